package hvt

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
)

// thread is a guest thread, run by its own vCPU on its own host thread.
type thread struct {
	m   *machine
	tid int
	cpu *vcpu

	hostTID  atomic.Int32
	kickCh   chan struct{} // wakes waits in the tender
	kickFD   int           // eventfd: wakes host polls (epoll_pwait)
	sigmask  atomic.Uint64 // blocked signals, bit n-1 for signal n
	pending  atomic.Uint64 // thread-directed pending signals
	pendInfo [65]siginfo   // guarded by m.sig.mu
	alt      altStack

	exited   bool         // the thread called exit
	last     [8]sysRecord // the last system calls, for fault reports
	lastNext int
}

type sysRecord struct {
	nr   uint64
	args [3]uint64
	ret  int64
}

// addThread registers a new thread on vCPU c, copying the parent's signal
// mask (clone) or starting with none blocked.
func (m *machine) addThread(c *vcpu, parent *thread) *thread {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		fd = -1
	}
	m.mu.Lock()
	t := &thread{m: m, tid: m.nextTID, cpu: c, kickCh: make(chan struct{}, 1), kickFD: fd}
	m.nextTID++
	m.threads[t.tid] = t
	m.mu.Unlock()
	if parent != nil {
		t.sigmask.Store(parent.sigmask.Load())
	}
	return t
}

func (m *machine) startThread(t *thread) {
	m.wg.Add(1)
	go t.run()
}

// kick makes the thread look at its signals and the machine state: it
// interrupts KVM_RUN (immediate_exit plus a signal to its host thread, so
// neither a running guest nor the window before the ioctl loses it) and any
// wait in the tender.
func (t *thread) kick() {
	t.cpu.k.Run.SetImmediateExit(true)
	if tid := t.hostTID.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	}
	select {
	case t.kickCh <- struct{}{}:
	default:
	}
	if t.kickFD >= 0 {
		var one = [8]byte{1}
		unix.Write(t.kickFD, one[:])
	}
}

// drainKicks clears kick state before the thread re-examines its signals.
func (t *thread) drainKicks() {
	t.cpu.k.Run.SetImmediateExit(false)
	select {
	case <-t.kickCh:
	default:
	}
	if t.kickFD >= 0 {
		var b [8]byte
		unix.Read(t.kickFD, b[:])
	}
}

func (t *thread) run() {
	defer t.m.wg.Done()
	runtime.LockOSThread()
	// The host thread is left locked when the goroutine ends, so Go
	// retires it rather than reuse a thread that ran a vCPU.
	t.hostTID.Store(int32(unix.Gettid()))
	defer t.finish()
	k := t.cpu.k
	for !t.m.exiting.Load() {
		if t.deliverSignals() {
			return
		}
		err := k.RunOnce()
		if err == unix.EINTR || err == unix.EAGAIN {
			t.drainKicks()
			t.m.stats.count(&t.m.stats.kicks)
			continue
		}
		if err != nil {
			t.crash(fmt.Sprintf("KVM_RUN failed: %v", err), nil)
			return
		}
		if stop := t.handleExit(); stop {
			return
		}
	}
}

// finish parks the vCPU for reuse by a later clone.
func (t *thread) finish() {
	m := t.m
	m.mu.Lock()
	delete(m.threads, t.tid)
	if !m.exiting.Load() {
		m.idle = append(m.idle, t.cpu)
	} else {
		defer t.cpu.k.Close()
	}
	m.mu.Unlock()
	if t.kickFD >= 0 {
		unix.Close(t.kickFD)
	}
}

// handleExit handles one VM exit; it reports whether the thread is done.
func (t *thread) handleExit() bool {
	run := t.cpu.k.Run
	switch r := run.ExitReason(); r {
	case kvm.ExitIO:
		port, _, _ := run.IO()
		switch {
		case port == portSyscall:
			r := run.Regs()
			return t.syscall(r.RSP)
		case port < 32:
			return t.exception(int(port))
		default:
			t.crash("unexpected interrupt or exception vector above 31", nil)
			return true
		}
	case kvm.ExitMMIO:
		addr, _ := run.MMIO()
		if addr&^(pageSize-1) == t.m.doorbellPA {
			return t.syscall(run.Regs().RSP)
		}
		t.crash(fmt.Sprintf("access to guest-physical %#x, which is not memory", addr), nil)
	case kvm.ExitInternalError:
		sub, data := run.InternalError()
		t.crash(fmt.Sprintf("KVM internal error, suberror %d, data %#x", sub, data), nil)
	case kvm.ExitFailEntry:
		t.crash(fmt.Sprintf("KVM entry failure, hardware reason %#x", run.FailEntryReason()), nil)
	case kvm.ExitShutdown:
		t.crash("triple fault (the CPU shut down)", nil)
	default:
		t.crash("unexpected exit: "+kvm.ExitName(r), nil)
	}
	return true
}

// userState is the interrupted program's RIP, RSP and RFLAGS; the general
// registers are in the synchronized registers.
type userState struct{ rip, rsp, rflags uint64 }

// resume puts the vCPU back at CPL3 with the given state.
func (t *thread) resume(u userState) {
	run := t.cpu.k.Run
	r := run.Regs()
	r.RIP, r.RSP, r.RFLAGS = u.rip, u.rsp, u.rflags&^(1<<8|1<<10)|rflagsDefault // no TF or DF
	run.MarkDirty(kvm.SyncRegsGPRs)
	// Writing the special registers is costly (KVM revalidates them all),
	// so only an exit taken in ring 0 (an exception) pays for it.
	if s := run.Sregs(); s.CS.Selector&3 != 3 {
		userSegments(s)
		run.MarkDirty(kvm.SyncRegsSregs)
	}
}

// exception handles a CPU exception raised in the guest.
func (t *thread) exception(vector int) bool {
	m := t.m
	stack := m.mem.host[t.cpu.stackPA : t.cpu.stackPA+pageSize]
	frame := stack[pageSize-40:]
	var errCode uint64
	if hasErrorCode(vector) {
		errCode = le.Uint64(stack[pageSize-48:])
	}
	u := userState{rip: le.Uint64(frame[0:]), rsp: le.Uint64(frame[24:]), rflags: le.Uint64(frame[16:])}
	cs := le.Uint64(frame[8:])
	m.stats.countException(vector)
	if cs&3 != 3 {
		t.crash(fmt.Sprintf("%s in ring 0 (error code %#x) — a tender bug", vectorName(vector), errCode), &u)
		return true
	}
	if vector == 13 && u.rip == kernEntry {
		// A SYSCALL whose entry runs with user privilege (kvm-pvm): the
		// entry's `out` faulted instead of exiting. Serve the call.
		return t.syscall(u.rsp)
	}
	info := siginfo{trapno: uint64(vector), err: errCode}
	switch vector {
	case 14:
		addr := t.cpu.k.Run.Sregs().CR2
		write := errCode&2 != 0
		ok, err := m.mem.fault(addr, write)
		var oom *oomError
		if errors.As(err, &oom) {
			t.oom(oom, &u)
			return true
		}
		if err != nil {
			t.crash(fmt.Sprintf("binding memory at %#x: %v", addr, err), &u)
			return true
		}
		if ok {
			m.stats.count(&m.stats.pageFaults)
			t.resume(u)
			return false
		}
		info.signo, info.addr = sigSEGV, addr
		info.code = segvMapErr
		if errCode&1 != 0 {
			info.code = segvAccErr
		}
	case 0:
		info.signo, info.code, info.addr = sigFPE, fpeIntDiv, u.rip
	case 16, 19:
		info.signo, info.code, info.addr = sigFPE, fpeFltInv, u.rip
	case 6:
		info.signo, info.code, info.addr = sigILL, illIllOpn, u.rip
	case 1, 3:
		info.signo, info.code, info.addr = sigTRAP, siKernel, u.rip
	case 13, 12, 11, 10:
		info.signo, info.code = sigSEGV, siKernel
	case 17:
		info.signo, info.code, info.addr = sigBUS, busAdrAln, u.rip
	default:
		t.crash(fmt.Sprintf("%s (error code %#x)", vectorName(vector), errCode), &u)
		return true
	}
	return t.faultSignal(info, u, vector)
}
