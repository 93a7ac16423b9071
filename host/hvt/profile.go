package hvt

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/google/pprof/profile"

	"github.com/moteos/mote/host/image"
)

// The guest's CPU profile, taken from outside (mote run --profile): a
// profiler goroutine stops each vCPU that is running guest code every
// period — the kick that delivers signals, without waking the tender's
// waits — and the vCPU's thread records where the guest was, RIP and the
// frame-pointer chain as in a crash report, before it goes on. A thread
// waiting in the tender (a futex, a poll, a sleep) is not sampled, so the
// profile is the guest's own CPU time, as a process's pprof profile is.
// Each sample costs the guest one exit (~100 µs here): 1% of a busy vCPU at
// 100 Hz. The guest needs no cooperation and no code of its own, which is
// the point: its Go runtime has no files to write a profile to.

// profileHz is how often each running vCPU is sampled.
const profileHz = 100

type profiler struct {
	period time.Duration
	mu     sync.Mutex
	counts map[string]int64 // by stack: its PCs as the bytes of a []uint64
	stacks map[string][]uint64
}

func newProfiler() *profiler {
	return &profiler{period: time.Second / profileHz, counts: map[string]int64{}, stacks: map[string][]uint64{}}
}

// sampleLoop asks every vCPU in the guest for a sample each period until
// the machine stops.
func (m *machine) sampleLoop() {
	m.every(m.prof.period, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, t := range m.threads {
			if t.inGuest.Load() {
				// Taken at the thread's next exit; if the vCPU left the
				// guest meanwhile, its next KVM_RUN returns at once.
				t.sampleWanted.Store(true)
				t.interruptRun()
			}
		}
	})
}

// sample records where the thread's guest code is, after an exit; the
// synchronized registers hold its state.
func (p *profiler) sample(t *thread) {
	r := t.cpu.k.Run.Regs()
	pcs := t.backtrace(r.RIP, r.RSP, r.RBP)
	key := unsafe.String((*byte)(unsafe.Pointer(&pcs[0])), len(pcs)*8)
	p.mu.Lock()
	if p.counts[key] == 0 {
		key = string([]byte(key)) // the map keeps its own copy
		p.stacks[key] = pcs
	}
	p.counts[key]++
	p.mu.Unlock()
}

// write encodes the samples as a pprof profile, symbolized from the
// image's line table, so that `go tool pprof` needs nothing else.
func (m *machine) writeProfile(w io.Writer) error {
	p := m.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	prof := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:        int64(p.period),
		TimeNanos:     m.start.UnixNano(),
		DurationNanos: int64(time.Since(m.start)),
	}
	var lo, hi uint64
	for _, s := range m.img.Segments {
		if s.Exec {
			lo, hi = s.Vaddr, s.Vaddr+s.Memsz
		}
	}
	mapping := &profile.Mapping{ID: 1, Start: lo, Limit: hi, File: m.img.Path, HasFunctions: true, HasFilenames: true, HasLineNumbers: true}
	prof.Mapping = []*profile.Mapping{mapping}
	locs := map[uint64]*profile.Location{}
	funcs := map[string]*profile.Function{}
	keys := make([]string, 0, len(p.counts))
	for k := range p.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable output for a given run
	for _, k := range keys {
		var sl []*profile.Location
		for _, pc := range p.stacks[k] {
			loc := locs[pc]
			if loc == nil {
				loc = &profile.Location{ID: uint64(len(locs) + 1), Address: pc, Mapping: mapping}
				if f := m.symbolize(pc); f.Function != "" {
					fn := funcs[f.Function]
					if fn == nil {
						fn = &profile.Function{ID: uint64(len(funcs) + 1), Name: f.Function, SystemName: f.Function, Filename: f.File}
						funcs[f.Function] = fn
						prof.Function = append(prof.Function, fn)
					}
					loc.Line = []profile.Line{{Function: fn, Line: int64(f.Line)}}
				}
				locs[pc] = loc
				prof.Location = append(prof.Location, loc)
			}
			sl = append(sl, loc)
		}
		n := p.counts[k]
		prof.Sample = append(prof.Sample, &profile.Sample{Location: sl, Value: []int64{n, n * int64(p.period)}})
	}
	if err := prof.CheckValid(); err != nil {
		return fmt.Errorf("hvt: profile: %w", err)
	}
	return prof.Write(w)
}

// symbolize names pc in the image, or the tender's own code in the guest:
// the shim (system calls answered in the guest, short sleeps) and the vDSO.
func (m *machine) symbolize(pc uint64) image.Frame {
	switch {
	case pc >= shimBase && pc < shimBase+pageSize:
		return image.Frame{PC: pc, Function: "[mote shim]"}
	case pc >= vdsoBase && pc < vdsoBase+pageSize:
		return image.Frame{PC: pc, Function: "[mote vdso]"}
	}
	return m.img.Symbolize(pc)
}
