package hvt

import (
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/vdso"
)

// The guest clock. The guest reads the TSC itself (RDTSC runs at CPL3
// without an exit), and the vDSO turns ticks into nanoseconds with the
// scale and bases published here. CLOCK_MONOTONIC is based once and never
// moves backwards; CLOCK_REALTIME is re-based every few seconds to follow
// the host's clock. The guest's TSC is the host's plus an offset KVM
// chooses: about 0 on kvm-pvm, but a new VM's TSC starts near 0 on VMX
// and SVM, so the bases are in guest ticks (tscOffset).

func rdtsc() uint64

// realtimeRefresh is how often CLOCK_REALTIME's base follows the host.
const realtimeRefresh = 5 * time.Second

func (m *machine) timeWord(off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&m.mem.host[m.timePA+off]))
}

// startClock publishes the first bases and starts the realtime refresh.
func (m *machine) startClock(c *vcpu) {
	khz, err := c.k.TSCKHz()
	if err != nil || khz == 0 {
		khz = hostTSCKHz()
	}
	// mult = 2^32 * 1e6 / kHz: nanoseconds per tick in 32.32 fixed point.
	hi, lo := bits.Mul64(1e6, 1<<32)
	mult, _ := bits.Div64(hi, lo, khz)
	off := tscOffset(c)
	tsc, mono, real := sampleClocks()
	tsc += off
	seq := (*uint32)(unsafe.Pointer(&m.mem.host[m.timePA+vdso.DataSeq]))
	atomic.StoreUint32(seq, 1)
	atomic.StoreUint64(m.timeWord(vdso.DataTSCBase), tsc)
	atomic.StoreUint64(m.timeWord(vdso.DataMult), mult)
	atomic.StoreUint64(m.timeWord(vdso.DataMonoBase), mono)
	atomic.StoreUint64(m.timeWord(vdso.DataRealBase), real)
	atomic.StoreUint32(seq, 2)
	refresh := func() {
		tsc, _, real := sampleClocks()
		delta := tsc + off - atomic.LoadUint64(m.timeWord(vdso.DataTSCBase))
		hi, lo := bits.Mul64(delta, mult)
		elapsed := hi<<32 | lo>>32
		atomic.StoreUint32(seq, atomic.LoadUint32(seq)+1)
		atomic.StoreUint64(m.timeWord(vdso.DataRealBase), real-elapsed)
		atomic.StoreUint32(seq, atomic.LoadUint32(seq)+1)
	}
	m.background(func() { m.every(realtimeRefresh, refresh) })
}

// every calls f each period until the machine stops.
func (m *machine) every(period time.Duration, f func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
			f()
		}
	}
}

// sampleClocks reads the TSC between two CLOCK_MONOTONIC reads, keeping
// the tightest of a few tries.
func sampleClocks() (tsc, mono, real uint64) {
	best := uint64(1 << 63)
	for i := 0; i < 5; i++ {
		var a, b, r unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		t := rdtsc()
		unix.ClockGettime(unix.CLOCK_REALTIME, &r)
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		if d := uint64(b.Nano() - a.Nano()); d < best {
			best = d
			tsc, mono, real = t, uint64(a.Nano()), uint64(r.Nano())
		}
	}
	return
}

// msrTSC is IA32_TIME_STAMP_COUNTER.
const msrTSC = 0x10

// tscOffset is the guest's TSC less the host's (modulo 2^64), read through
// KVM_GET_MSRS between two host reads and kept from the tightest of a few
// tries. It is 0 if KVM cannot say, as the tender assumed before it
// measured.
func tscOffset(c *vcpu) uint64 {
	best, off := uint64(1<<63), uint64(0)
	for i := 0; i < 5; i++ {
		msr := []kvm.MSR{{Index: msrTSC}}
		a := rdtsc()
		if err := c.k.GetMSRs(msr); err != nil {
			return 0
		}
		b := rdtsc()
		if b-a < best {
			best, off = b-a, msr[0].Data-(a+(b-a)/2)
		}
	}
	return off
}

// hostTSCKHz measures the TSC against CLOCK_MONOTONIC when KVM cannot say.
func hostTSCKHz() uint64 {
	t0, m0, _ := sampleClocks()
	time.Sleep(20 * time.Millisecond)
	t1, m1, _ := sampleClocks()
	return (t1 - t0) * 1e6 / (m1 - m0)
}
