package hvt

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/moteos/mote/host/image"
	"github.com/moteos/mote/host/pprof"
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
	key := string(unsafe.Slice((*byte)(unsafe.Pointer(&pcs[0])), len(pcs)*8))
	p.mu.Lock()
	if p.counts[key] == 0 {
		p.stacks[key] = pcs
	}
	p.counts[key]++
	p.mu.Unlock()
}

// writeProfile encodes the samples as a pprof profile, symbolized from
// the image's line table, so that go tool pprof needs nothing else.
func (m *machine) writeProfile(w io.Writer) error {
	p := m.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	out := pprof.Profile{Start: m.start, Duration: time.Since(m.start), Period: p.period}
	for _, s := range m.img.Segments {
		if s.Exec {
			out.Mapping = pprof.Mapping{Start: s.Vaddr, Limit: s.Vaddr + s.Memsz, File: m.img.Path}
		}
	}
	keys := make([]string, 0, len(p.counts))
	for k := range p.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same output for the same samples
	for _, k := range keys {
		stack := make([]pprof.Frame, len(p.stacks[k]))
		for i, pc := range p.stacks[k] {
			f := m.symbolize(pc)
			stack[i] = pprof.Frame{PC: pc, Function: f.Function, File: f.File, Line: f.Line, StartLine: f.StartLine}
		}
		out.Samples = append(out.Samples, pprof.Sample{Stack: stack, Count: p.counts[k]})
	}
	if err := out.Write(w); err != nil {
		return fmt.Errorf("hvt: writing the profile: %w", err)
	}
	return nil
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
