package hvt

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Interval timers (setitimer) and POSIX timers (timer_create) on the
// clocks a guest's Go runtime asks for: its CPU profiler, behind
// runtime/pprof and net/http/pprof, wants SIGPROF for every 10 ms of each
// thread's CPU time (timer_create on CLOCK_THREAD_CPUTIME_ID with
// SIGEV_THREAD_ID) and of the whole process's (setitimer(ITIMER_PROF)).
// A guest thread is a vCPU thread of the tender, so its CPU time is that
// host thread's, read through the host's per-thread clock. While a timer is
// armed a poller reads the armed timers' clocks every timerTick and posts
// the signal of each that expired, as Linux's scheduler tick does; with
// none armed it costs nothing.

// timerTick is how often armed timers are looked at: Linux's tick at 250
// Hz, finer than the profiler's 100 Hz.
const timerTick = 4 * time.Millisecond

// maxTimers bounds a guest's POSIX timers (Linux bounds them by
// RLIMIT_SIGPENDING).
const maxTimers = 1024

const (
	siTimer        = -2 // SI_TIMER: a POSIX timer's signal
	sigevSignal    = 0  // SIGEV_SIGNAL: to the process
	sigevNone      = 1  // SIGEV_NONE: nothing
	sigevThreadID  = 4  // SIGEV_THREAD_ID: to one thread
	timerAbstime   = 1  // TIMER_ABSTIME
	sigPROF        = 27 // SIGPROF
	sigVTALRM      = 26 // SIGVTALRM
	sigALRM        = 14 // SIGALRM
	itimerReal     = 0
	itimerVirtual  = 1
	itimerProf     = 2
	clockThreadCPU = unix.CLOCK_THREAD_CPUTIME_ID
)

// ptimer is one armed or disarmed timer.
type ptimer struct {
	id       int32
	clock    func() (time.Duration, bool) // its clock now; false: the clock is gone
	owner    int                          // the thread whose CPU clock it reads; 0: not a thread's
	signo    int
	target   int // the thread the signal goes to; 0: the process
	notify   int
	code     int32
	sigval   uint64
	expiry   time.Duration // on its clock; 0: disarmed
	interval time.Duration
	overrun  int32
}

type timers struct {
	mu      sync.Mutex
	nextID  int32
	posix   map[int32]*ptimer
	itimer  [3]*ptimer
	polling bool
}

// threadClock reads a host thread's CPU clock (Linux's
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)); it answers only for threads
// of the tender's own process.
func threadClock(hostTID int32) func() (time.Duration, bool) {
	return hostClock(int32(^uint32(hostTID)<<3 | 6))
}

// hostClock reads the host's clock id; false once it is gone (a thread's
// that ended).
func hostClock(id int32) func() (time.Duration, bool) {
	return func() (time.Duration, bool) {
		var ts unix.Timespec
		if unix.ClockGettime(id, &ts) != nil {
			return 0, false
		}
		return time.Duration(ts.Nano()), true
	}
}

// arm sets p to expire after value (or at it, when abs), then every
// interval, and returns what was left of its previous setting. The
// timers' lock is held.
func (m *machine) armLocked(p *ptimer, value, interval time.Duration, abs bool) (left, was time.Duration) {
	now, _ := p.clock()
	if p.expiry != 0 {
		left = max(p.expiry-now, 1)
	}
	was = p.interval
	p.interval, p.overrun = interval, 0
	switch {
	case value == 0:
		p.expiry = 0
	case abs:
		p.expiry = max(value, 1)
	default:
		p.expiry = now + value
	}
	if p.expiry != 0 && !m.timers.polling {
		m.timers.polling = true
		go m.pollTimers()
	}
	return left, was
}

// pollTimers posts the signals of expired timers every tick while any is
// armed.
func (m *machine) pollTimers() {
	tick := time.NewTicker(timerTick)
	defer tick.Stop()
	type due struct {
		p    *ptimer
		info siginfo
	}
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
		}
		var fire []due
		tm := &m.timers
		tm.mu.Lock()
		armed := false
		check := func(p *ptimer) {
			if p == nil || p.expiry == 0 {
				return
			}
			now, ok := p.clock()
			if !ok {
				p.expiry = 0 // its thread is gone
				return
			}
			armed = true
			if now < p.expiry {
				return
			}
			var over int32
			if p.interval > 0 {
				n := (now-p.expiry)/p.interval + 1
				p.expiry += n * p.interval
				over = int32(min(n-1, 1<<30))
			} else {
				p.expiry = 0
			}
			if p.notify == sigevNone {
				return
			}
			fire = append(fire, due{p, siginfo{code: p.code, pid: p.id, uid: over, addr: p.sigval}})
		}
		for _, p := range tm.posix {
			check(p)
		}
		for _, p := range tm.itimer {
			check(p)
		}
		if !armed {
			tm.polling = false
		}
		tm.mu.Unlock()
		for _, f := range fire {
			if f.p.target == 0 {
				m.postProcessSignal(f.p.signo, f.info)
				continue
			}
			m.mu.Lock()
			if t := m.threads[f.p.target]; t != nil {
				t.postSignal(f.p.signo, f.info)
			}
			m.mu.Unlock()
		}
		if !armed {
			return
		}
	}
}

// forgetTimersLocked disarms the timers that read or signal a thread that
// ended, as Linux's die with it. m.mu is held.
func (m *machine) forgetTimersLocked(tid int) {
	m.timers.mu.Lock()
	defer m.timers.mu.Unlock()
	for _, p := range m.timers.posix {
		if p.owner == tid || p.target == tid {
			p.expiry = 0
		}
	}
}

func (t *thread) readDuration(va uint64, usec bool) (time.Duration, time.Duration, int64) {
	var b [32]byte
	if err := t.m.mem.copyIn(va, b[:]); err != nil {
		return 0, 0, -int64(unix.EFAULT)
	}
	var d [2]time.Duration
	for i := range d {
		sec, frac := int64(le.Uint64(b[16*i:])), int64(le.Uint64(b[16*i+8:]))
		limit, unit := int64(1e9), int64(1)
		if usec {
			limit, unit = 1e6, 1000
		}
		if sec < 0 || frac < 0 || frac >= limit || sec > 1<<32 {
			return 0, 0, -int64(unix.EINVAL)
		}
		d[i] = time.Duration(sec)*time.Second + time.Duration(frac*unit)
	}
	return d[0], d[1], 0 // interval, value
}

func (t *thread) writeDuration(va uint64, interval, value time.Duration, usec bool) int64 {
	var b [32]byte
	for i, d := range []time.Duration{interval, value} {
		frac := uint64(d % time.Second)
		if usec {
			frac = (frac + 999) / 1000 // never 0 for a timer that is armed
		}
		le.PutUint64(b[16*i:], uint64(d/time.Second))
		le.PutUint64(b[16*i+8:], frac)
	}
	if err := t.m.mem.copyOut(va, b[:]); err != nil {
		return -int64(unix.EFAULT)
	}
	return 0
}

// sysSetitimer: ITIMER_PROF and ITIMER_VIRTUAL count the guest's CPU
// time, which is the tender's (a guest has no other); ITIMER_REAL counts
// real time. Their signals go to the process.
func sysSetitimer(t *thread, a *sysArgs) int64 {
	which := int32(a.a[0])
	if which < itimerReal || which > itimerProf {
		return -int64(unix.EINVAL)
	}
	var interval, value time.Duration
	if a.a[1] != 0 {
		var res int64
		if interval, value, res = t.readDuration(a.a[1], true); res != 0 {
			return res
		}
	}
	tm := &t.m.timers
	tm.mu.Lock()
	p := tm.itimer[which]
	if p == nil {
		p = &ptimer{code: siKernel, notify: sigevSignal}
		switch which {
		case itimerReal:
			p.clock, p.signo = hostClock(unix.CLOCK_MONOTONIC), sigALRM
		case itimerVirtual:
			p.clock, p.signo = hostClock(unix.CLOCK_PROCESS_CPUTIME_ID), sigVTALRM
		default:
			p.clock, p.signo = hostClock(unix.CLOCK_PROCESS_CPUTIME_ID), sigPROF
		}
		tm.itimer[which] = p
	}
	left, was := t.m.armLocked(p, value, interval, false)
	tm.mu.Unlock()
	if a.a[2] != 0 {
		return t.writeDuration(a.a[2], was, left, true)
	}
	return 0
}

// sysTimerCreate takes the clocks a CPU profiler and ordinary programs
// use: the calling thread's CPU time, the process's, and the real clocks.
func sysTimerCreate(t *thread, a *sysArgs) int64 {
	clockID, sevp, idp := int32(a.a[0]), a.a[1], a.a[2]
	p := &ptimer{code: siTimer, signo: sigALRM, notify: sigevSignal}
	switch clockID {
	case clockThreadCPU:
		p.clock, p.owner = threadClock(t.hostTID.Load()), t.tid
	case unix.CLOCK_PROCESS_CPUTIME_ID, unix.CLOCK_MONOTONIC, unix.CLOCK_REALTIME, unix.CLOCK_BOOTTIME:
		p.clock = hostClock(clockID)
	default:
		return -int64(unix.EINVAL)
	}
	if sevp != 0 {
		var ev [20]byte // sigval, signo, notify, the thread id
		if err := t.m.mem.copyIn(sevp, ev[:]); err != nil {
			return -int64(unix.EFAULT)
		}
		p.sigval = le.Uint64(ev[0:])
		p.signo = int(int32(le.Uint32(ev[8:])))
		p.notify = int(int32(le.Uint32(ev[12:])))
		switch p.notify {
		case sigevNone, sigevSignal:
		case sigevThreadID:
			p.target = int(int32(le.Uint32(ev[16:])))
			t.m.mu.Lock()
			alive := t.m.threads[p.target] != nil
			t.m.mu.Unlock()
			if !alive {
				return -int64(unix.EINVAL)
			}
		default:
			return -int64(unix.EINVAL) // SIGEV_THREAD is the C library's, never the kernel's
		}
		if p.notify != sigevNone && (p.signo < 1 || p.signo > nsig) {
			return -int64(unix.EINVAL)
		}
	}
	tm := &t.m.timers
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if len(tm.posix) >= maxTimers {
		return -int64(unix.EAGAIN)
	}
	if tm.posix == nil {
		tm.posix = map[int32]*ptimer{}
	}
	for tm.posix[tm.nextID] != nil {
		tm.nextID = (tm.nextID + 1) & (1<<31 - 1)
	}
	p.id = tm.nextID
	tm.nextID = (tm.nextID + 1) & (1<<31 - 1)
	if sevp == 0 {
		p.sigval = uint64(p.id)
	}
	var id [4]byte
	le.PutUint32(id[:], uint32(p.id))
	if err := t.m.mem.copyOut(idp, id[:]); err != nil {
		return -int64(unix.EFAULT)
	}
	tm.posix[p.id] = p
	return 0
}

func sysTimerSettime(t *thread, a *sysArgs) int64 {
	id, flags := int32(a.a[0]), a.a[1]
	if flags&^timerAbstime != 0 {
		return -int64(unix.EINVAL)
	}
	interval, value, res := t.readDuration(a.a[2], false)
	if res != 0 {
		return res
	}
	tm := &t.m.timers
	tm.mu.Lock()
	p := tm.posix[id]
	if p == nil {
		tm.mu.Unlock()
		return -int64(unix.EINVAL)
	}
	left, was := t.m.armLocked(p, value, interval, flags&timerAbstime != 0)
	tm.mu.Unlock()
	if a.a[3] != 0 {
		return t.writeDuration(a.a[3], was, left, false)
	}
	return 0
}

func sysTimerGettime(t *thread, a *sysArgs) int64 {
	tm := &t.m.timers
	tm.mu.Lock()
	p := tm.posix[int32(a.a[0])]
	if p == nil {
		tm.mu.Unlock()
		return -int64(unix.EINVAL)
	}
	var left time.Duration
	if p.expiry != 0 {
		now, _ := p.clock()
		left = max(p.expiry-now, 1)
	}
	interval := p.interval
	tm.mu.Unlock()
	return t.writeDuration(a.a[1], interval, left, false)
}

func sysTimerDelete(t *thread, a *sysArgs) int64 {
	tm := &t.m.timers
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.posix[int32(a.a[0])] == nil {
		return -int64(unix.EINVAL)
	}
	delete(tm.posix, int32(a.a[0]))
	return 0
}
