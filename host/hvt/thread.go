package hvt

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/shim"
)

// thread is a guest thread, run by its own vCPU on its own host thread.
type thread struct {
	m   *machine
	tid int
	cpu *vcpu

	hostTID      atomic.Int32
	inGuest      atomic.Bool   // in KVM_RUN, running guest code: the profiler samples it
	sampleWanted atomic.Bool   // the profiler asked: record where the guest is at the next exit
	kickCh       chan struct{} // wakes waits in the tender
	kickFD       int           // eventfd: wakes host polls (epoll_pwait)
	blk          *[8]uint64    // the thread's block in guest memory (shim.Word*)
	blkIndex     int
	blkVA        uint64
	pendInfo     [65]siginfo // guarded by m.sig.mu

	exited   bool         // the thread called exit
	comm     [16]byte     // its name (prctl PR_SET_NAME), NUL-terminated
	last     [8]sysRecord // the last system calls, for fault reports
	lastNext int
}

type sysRecord struct {
	nr   uint64
	args [3]uint64
	ret  int64
}

// addThread registers a new thread on vCPU c, with its block in guest
// memory, copying the parent's signal mask (clone) or blocking nothing.
func (m *machine) addThread(c *vcpu, parent *thread) (*thread, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("hvt: thread kick eventfd: %w", err)
	}
	m.mu.Lock()
	idx := -1
	for i, used := range m.blocks {
		if !used {
			idx = i
			break
		}
	}
	if idx < 0 {
		m.mu.Unlock()
		unix.Close(fd)
		return nil, fmt.Errorf("hvt: more than %d threads", len(m.blocks))
	}
	m.blocks[idx] = true
	t := &thread{m: m, tid: m.nextTID, cpu: c, kickCh: make(chan struct{}, 1), kickFD: fd, blkIndex: idx}
	m.nextTID++
	// The block is ready before the thread joins the table, where signal
	// senders (tgkill, a process signal, under m.mu) read its mask and
	// pending set: they would find no block, or have a signal they posted
	// zeroed here.
	t.blkVA = shimBase + shim.ThreadsOffset + uint64(idx)*shim.ThreadSize
	pa, _, _ := m.mem.translate(t.blkVA)
	t.blk = (*[8]uint64)(unsafe.Pointer(&m.mem.host[pa]))
	*t.blk = [8]uint64{}
	t.blk[shim.WordTID] = uint64(t.tid)
	t.blk[shim.WordAltFlags] = ssDisable
	if parent != nil {
		t.setMask(parent.mask())
		t.comm = parent.comm
	} else {
		copy(t.comm[:15], filepath.Base(m.img.Path)) // as Linux names a process after its executable
	}
	m.threads[t.tid] = t
	m.mu.Unlock()
	return t, nil
}

// forgetLocked takes t out of the thread table and frees its block. A
// pending process signal goes to another thread: the one it kicked may be
// t, leaving without having taken it, and the others, asleep in the
// tender, look only when a wait begins (Linux retargets it likewise).
// m.mu is held.
func (m *machine) forgetLocked(t *thread) {
	delete(m.threads, t.tid)
	m.blocks[t.blkIndex] = false
	m.forgetTimersLocked(t.tid)
	if p := atomic.LoadUint64(m.procPending()); p != 0 {
		m.kickForLocked(p)
	}
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
	t.interruptRun()
	select {
	case t.kickCh <- struct{}{}:
	default:
	}
	if t.kickFD >= 0 {
		var one = [8]byte{1}
		unix.Write(t.kickFD, one[:])
	}
}

// interruptRun makes the thread's KVM_RUN return, now if the vCPU is in
// the guest or at once on its next entry, without waking a wait in the
// tender (the profiler's sample).
func (t *thread) interruptRun() {
	t.cpu.k.Run.SetImmediateExit(true)
	if tid := t.hostTID.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
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
	nameThread(fmt.Sprintf("vcpu:t%d", t.tid))
	defer t.finish()
	k := t.cpu.k
	for !t.m.exiting.Load() {
		if t.deliverSignals() {
			return
		}
		t.inGuest.Store(true)
		err := k.RunOnce()
		t.inGuest.Store(false)
		if t.sampleWanted.Swap(false) {
			t.m.prof.sample(t)
		}
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
	m.forgetLocked(t)
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
		// Only the ring-0 stubs may exit through a port (IOPL is 0); the
		// stub's address is checked too, so that no other code can pass
		// for an exception.
		port, _, _ := run.IO()
		rip := run.Regs().RIP
		switch {
		case port < 32 && rip-(kernStubs+uint64(port)*stubSize) < stubSize:
			return t.exception(int(port))
		case port == portOther && rip-(kernStubs+stubOther) < stubSize:
			t.crash("unexpected interrupt or exception vector above 31", nil)
		default:
			t.crash(fmt.Sprintf("port I/O to %#x from %#x, which is not a ring-0 stub", port, rip), nil)
		}
	case kvm.ExitMMIO:
		addr, write := run.MMIO()
		if addr&^(pageSize-1) == t.m.doorbellPA {
			return t.syscall(run.Regs().RSP)
		}
		if write && t.m.doorbell(addr) {
			return false
		}
		if _, mem := t.m.mem.slot(addr); mem && write {
			// Only the shared copy of the program is a read-only slot,
			// and the page tables never let user mode store to it.
			t.crash(fmt.Sprintf("store to guest-physical %#x, the program's read-only pages that instances share", addr), nil)
			return true
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
	if vector == 14 {
		// Memory not yet bound, wherever the access came from (the
		// program, the shim, the shim's XSAVE into a signal frame).
		addr := t.cpu.k.Run.Sregs().CR2
		ok, err := m.mem.fault(addr, errCode&2 != 0)
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
	}
	inShim := u.rip >= shimBase && u.rip < shimBase+pageSize
	inSignal := u.rip >= shimBase+shim.SignalStart && u.rip < shimBase+shim.SignalEnd
	if inShim && !inSignal {
		// The shim touched a bad pointer the guest passed: the call it
		// stands for fails with EFAULT, as the system call would have.
		// The shim pushes nothing, so the return address is at the top of
		// the stack. (A fault in the signal entry or return is a bad
		// frame: the guest's fault, as on Linux.)
		if ret, ok := m.mem.peek(u.rsp); ok {
			efault := -int64(unix.EFAULT)
			t.cpu.k.Run.Regs().RAX = uint64(efault)
			t.resume(userState{rip: ret, rsp: u.rsp + 8, rflags: u.rflags})
			return false
		}
	}
	info := siginfo{trapno: uint64(vector), err: errCode}
	switch vector {
	case 14:
		info.signo, info.addr = sigSEGV, t.cpu.k.Run.Sregs().CR2
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

// nameThread names the calling host thread "mote:NAME" (at most 15
// bytes), so that top -H and /proc/PID/task show which thread is a guest
// thread's vCPU and which a device's. The process's main thread keeps its
// name, which ps, top and pgrep -x mote show for the process. The caller
// keeps the thread locked for its life.
func nameThread(name string) {
	if unix.Gettid() == unix.Getpid() {
		return
	}
	b := append([]byte("mote:"+name), 0)
	if len(b) > 16 {
		b = append(b[:15], 0)
	}
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}
