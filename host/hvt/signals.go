package hvt

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/shim"
)

// Signals, delivered as Linux delivers them on x86-64: an rt_sigframe
// (return address, ucontext with the interrupted registers and a pointer to
// the XSAVE state, siginfo) on the thread's stack or sigaltstack, the
// handler entered with (signo, &info, &uc), and rt_sigreturn restoring
// whatever the handler left in the ucontext. Go's runtime depends on all of
// it: asynchronous preemption edits the saved RIP and RSP, and a nil
// dereference becomes a panic by way of SIGSEGV.

const (
	nsig = 64

	sigINT   = 2
	sigILL   = 4
	sigTRAP  = 5
	sigABRT  = 6
	sigBUS   = 7
	sigFPE   = 8
	sigKILL  = 9
	sigSEGV  = 11
	sigTERM  = 15
	sigCHLD  = 17
	sigCONT  = 18
	sigSTOP  = 19
	sigURG   = 23
	sigWINCH = 28

	siUser     = 0
	siKernel   = 0x80
	siTkill    = -6
	segvMapErr = 1
	segvAccErr = 2
	fpeIntDiv  = 1
	fpeFltInv  = 7
	illIllOpn  = 2
	busAdrAln  = 1

	saSiginfo   = 0x4
	saOnstack   = 0x08000000
	saRestart   = 0x10000000
	saNodefer   = 0x40000000
	saResethand = 0x80000000
	saRestorer  = 0x04000000

	ssOnstack = 1
	ssDisable = 2

	sigDFL = 0
	sigIGN = 1
)

// Sizes and offsets of the x86-64 rt_sigframe.
const (
	ucOffset       = 8   // after the return address
	ucSize         = 304 // flags, link, stack_t, sigcontext, 8-byte mask
	infoOffset     = ucOffset + ucSize
	infoSize       = 128
	frameSize      = infoOffset + infoSize
	mcontextOffset = 40 // in the ucontext
	sigmaskOffset  = mcontextOffset + 256
	fpMagic1       = 0x46505853
	fpMagic2       = 0x46505845
)

type sigaction struct {
	handler, flags, restorer, mask uint64
}

type siginfo struct {
	signo, code int32
	pid, uid    int32  // a POSIX timer's: its id and overrun count
	addr        uint64 // a POSIX timer's: its sigval
	trapno, err uint64
}

type altStack struct {
	sp, size uint64
	flags    int32
}

// Signal state lives in guest memory, in the shim's process page and
// thread blocks (package shim), because the shim reads and writes it
// without exits: the actions, each thread's mask and alternate stack, and
// the pending sets. The tender keeps only the siginfo of pending signals.
// The guest can scribble on all of it; the tender validates what it reads
// as it validates any system call argument.

// sigState is the process-wide part the tender keeps.
type sigState struct {
	mu       sync.Mutex // orders posting and taking of pending signals
	pendInfo [nsig + 1]siginfo
}

// action reads signal sig's action under the slot's sequence counter. A
// guest that leaves the counter odd gets whatever the slot holds after a
// bounded wait: it cannot hang the tender.
func (m *machine) action(sig int) sigaction {
	w := m.actionWords(sig)
	var a sigaction
	for try := 0; try < 1000; try++ {
		seq := atomic.LoadUint64(&w[0])
		a = sigaction{atomic.LoadUint64(&w[1]), atomic.LoadUint64(&w[2]), atomic.LoadUint64(&w[3]), atomic.LoadUint64(&w[4])}
		if seq&1 == 0 && atomic.LoadUint64(&w[0]) == seq {
			break
		}
		runtime.Gosched()
	}
	return a
}

func (m *machine) setAction(sig int, a sigaction) {
	w := m.actionWords(sig)
	atomic.AddUint64(&w[0], 1)
	atomic.StoreUint64(&w[1], a.handler)
	atomic.StoreUint64(&w[2], a.flags)
	atomic.StoreUint64(&w[3], a.restorer)
	atomic.StoreUint64(&w[4], a.mask&^unblockable)
	atomic.AddUint64(&w[0], 1)
}

func (m *machine) actionWords(sig int) *[5]uint64 {
	return (*[5]uint64)(unsafe.Pointer(&m.mem.host[m.procPA+shim.ProcActions+uint64(sig)*shim.ActionSize]))
}

// procPending is the set of signals pending for the whole guest.
func (m *machine) procPending() *uint64 {
	return (*uint64)(unsafe.Pointer(&m.mem.host[m.procPA+shim.ProcPending]))
}

func (t *thread) mask() uint64       { return atomic.LoadUint64(&t.blk[shim.WordMask]) }
func (t *thread) setMask(v uint64)   { atomic.StoreUint64(&t.blk[shim.WordMask], v&^unblockable) }
func (t *thread) pendingSet() uint64 { return atomic.LoadUint64(&t.blk[shim.WordPending]) }

// altStack reads the thread's alternate stack; ok is false while the shim
// is halfway through changing it (its sequence count is odd). Only the
// thread itself writes it, so a count that is even is a whole change.
func (t *thread) altStack() (a altStack, ok bool) {
	seq := atomic.LoadUint64(&t.blk[shim.WordAltSeq])
	a = altStack{
		sp:    atomic.LoadUint64(&t.blk[shim.WordAltSP]),
		size:  atomic.LoadUint64(&t.blk[shim.WordAltSize]),
		flags: int32(atomic.LoadUint64(&t.blk[shim.WordAltFlags])),
	}
	return a, seq&1 == 0
}
func (t *thread) setAltStack(a altStack) {
	atomic.AddUint64(&t.blk[shim.WordAltSeq], 1)
	atomic.StoreUint64(&t.blk[shim.WordAltSP], a.sp)
	atomic.StoreUint64(&t.blk[shim.WordAltSize], a.size)
	atomic.StoreUint64(&t.blk[shim.WordAltFlags], uint64(uint32(a.flags)))
	atomic.AddUint64(&t.blk[shim.WordAltSeq], 1)
}

func bit(sig int) uint64 { return 1 << uint(sig-1) }

// unblockable are the signals no mask holds back.
const unblockable = 1<<(sigKILL-1) | 1<<(sigSTOP-1)

// defaultIgnored reports whether a signal's default action is to ignore it.
func defaultIgnored(sig int) bool {
	return sig == sigCHLD || sig == sigURG || sig == sigWINCH || sig == sigCONT
}

func (t *thread) sysRtSigaction(sig int, act, oact uint64, size uint64) int64 {
	if size != 8 {
		return -int64(unix.EINVAL)
	}
	if sig < 1 || sig > nsig || (act != 0 && (sig == sigKILL || sig == sigSTOP)) {
		return -int64(unix.EINVAL)
	}
	var newAct sigaction
	if act != 0 {
		var b [32]byte
		if err := t.m.mem.copyIn(act, b[:]); err != nil {
			return errno(err)
		}
		newAct = sigaction{le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]) &^ unblockable}
	}
	old := t.m.action(sig)
	if act != 0 {
		t.m.setAction(sig, newAct)
	}
	if oact != 0 {
		var b [32]byte
		le.PutUint64(b[0:], old.handler)
		le.PutUint64(b[8:], old.flags)
		le.PutUint64(b[16:], old.restorer)
		le.PutUint64(b[24:], old.mask)
		if err := t.m.mem.copyOut(oact, b[:]); err != nil {
			return errno(err)
		}
	}
	return 0
}

func (t *thread) sysRtSigprocmask(how int, set, oset, size uint64) int64 {
	if size != 8 {
		return -int64(unix.EINVAL)
	}
	old := t.mask()
	if set != 0 {
		v, err := t.m.mem.readU64(set)
		if err != nil {
			return errno(err)
		}
		var mask uint64
		switch how {
		case unix.SIG_BLOCK:
			mask = old | v
		case unix.SIG_UNBLOCK:
			mask = old &^ v
		case unix.SIG_SETMASK:
			mask = v
		default:
			return -int64(unix.EINVAL)
		}
		t.setMask(mask)
	}
	if oset != 0 {
		if err := t.m.mem.writeU64(oset, old); err != nil {
			return errno(err)
		}
	}
	return 0
}

func (t *thread) onAltStack(sp uint64) bool {
	alt, _ := t.altStack()
	return alt.flags&ssDisable == 0 && sp > alt.sp && sp-alt.sp <= alt.size
}

func (t *thread) sysSigaltstack(ss, oss, sp uint64) int64 {
	if oss != 0 {
		var b [24]byte
		alt, _ := t.altStack()
		le.PutUint64(b[0:], alt.sp)
		flags := alt.flags
		if t.onAltStack(sp) {
			flags |= ssOnstack
		}
		le.PutUint32(b[8:], uint32(flags))
		le.PutUint64(b[16:], alt.size)
		if err := t.m.mem.copyOut(oss, b[:]); err != nil {
			return errno(err)
		}
	}
	if ss != 0 {
		var b [24]byte
		if err := t.m.mem.copyIn(ss, b[:]); err != nil {
			return errno(err)
		}
		if t.onAltStack(sp) {
			return -int64(unix.EPERM)
		}
		flags := int32(le.Uint32(b[8:]))
		switch {
		case flags == ssDisable:
			t.setAltStack(altStack{flags: ssDisable})
		case flags == 0:
			size := le.Uint64(b[16:])
			if size < 2048 {
				return -int64(unix.ENOMEM)
			}
			t.setAltStack(altStack{sp: le.Uint64(b[0:]), size: size})
		default:
			return -int64(unix.EINVAL)
		}
	}
	return 0
}

// sysTgkill and sysKill post signals from the guest to itself. The guest is
// one process (pid 1); there is nobody else to signal.
func (t *thread) sysTgkill(tgid, tid, sig int) int64 {
	if tgid != 1 {
		return -int64(unix.ESRCH)
	}
	if sig < 0 || sig > nsig {
		return -int64(unix.EINVAL)
	}
	// Held until the signal is posted: a target that exits meanwhile would
	// leave its block in guest memory and its kick descriptor to whatever
	// comes next (a new thread), which would get the signal instead.
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	target := t.m.threads[tid]
	if target == nil {
		return -int64(unix.ESRCH)
	}
	if sig != 0 {
		target.postSignal(sig, siginfo{code: siTkill, pid: 1})
	}
	return 0
}

func (t *thread) sysKill(pid, sig int) int64 {
	if pid != 1 && pid != 0 && pid != -1 {
		return -int64(unix.ESRCH)
	}
	if sig < 0 || sig > nsig {
		return -int64(unix.EINVAL)
	}
	if sig != 0 {
		t.m.postProcessSignal(sig, siginfo{code: siUser, pid: 1})
	}
	return 0
}

// postSignal makes sig pending for this thread and kicks it.
func (t *thread) postSignal(sig int, info siginfo) {
	info.signo = int32(sig)
	s := &t.m.sig
	s.mu.Lock()
	if t.pendingSet()&bit(sig) == 0 {
		t.pendInfo[sig] = info
		atomic.OrUint64(&t.blk[shim.WordPending], bit(sig))
	}
	s.mu.Unlock()
	t.kick()
}

// postProcessSignal makes sig pending for the whole guest, as a signal from
// the host (SIGINT, SIGTERM) is, and kicks a thread that can take it.
func (m *machine) postProcessSignal(sig int, info siginfo) {
	info.signo = int32(sig)
	if sig == sigKILL {
		m.exit(128+sig, nil)
		return
	}
	m.sig.mu.Lock()
	if atomic.LoadUint64(m.procPending())&bit(sig) == 0 {
		m.sig.pendInfo[sig] = info
		atomic.OrUint64(m.procPending(), bit(sig))
	}
	m.sig.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kickForLocked(bit(sig))
}

// kickForLocked kicks one thread that does not block all of the process
// signals in set. If every thread blocks them they stay pending until one
// unblocks them, and each thread checks on its next exit. m.mu is held.
func (m *machine) kickForLocked(set uint64) {
	for _, t := range m.threads {
		if set&^t.mask() != 0 {
			t.kick()
			return
		}
	}
}

// takeSignal removes and returns the lowest pending signal this thread
// does not block, or 0.
func (t *thread) takeSignal() (int, siginfo) {
	s := &t.m.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	ready := (t.pendingSet() | atomic.LoadUint64(t.m.procPending())) &^ t.mask()
	if ready == 0 {
		return 0, siginfo{}
	}
	sig := bits.TrailingZeros64(ready) + 1
	if t.pendingSet()&bit(sig) != 0 {
		atomic.AndUint64(&t.blk[shim.WordPending], ^bit(sig))
		return sig, t.pendInfo[sig]
	}
	atomic.AndUint64(t.m.procPending(), ^bit(sig))
	return sig, s.pendInfo[sig]
}

// deliverSignals sets up handler frames for deliverable signals before the
// vCPU re-enters the guest. It reports true if the guest was ended (a
// signal whose default action terminates).
func (t *thread) deliverSignals() bool {
	if t.signalsHeld() {
		return false
	}
	for {
		sig, info := t.takeSignal()
		if sig == 0 {
			return false
		}
		act := t.m.action(sig)
		if act.handler > sigIGN && act.flags&saResethand != 0 {
			t.m.setAction(sig, sigaction{})
		}
		switch {
		case act.handler == sigIGN:
			continue
		case act.handler == sigDFL:
			if defaultIgnored(sig) {
				continue
			}
			t.m.exit(128+sig, nil)
			return true
		}
		r := t.cpu.k.Run.Regs()
		u := userState{rip: r.RIP, rsp: r.RSP, rflags: r.RFLAGS}
		if err := t.setupFrame(sig, info, act, u); err != nil {
			t.crash(fmt.Sprintf("cannot deliver signal %d: %v", sig, err), &u)
			return true
		}
	}
}

// signalsHeld reports whether asynchronous signals must wait for the
// thread's next exit:
//   - KVM holds an exception for it (a fault whose delivery the kick
//     interrupted): it goes first, as on Linux, where a fault's signal is
//     raised before the thread can take any other. Pointing the vCPU at a
//     handler now would have KVM inject the old fault at the handler's
//     first instruction;
//   - the thread was interrupted in ring 0, in the tender's exception stub
//     between the CPU's delivery of a fault and the stub's exit: a frame
//     built now would save the ring-0 stack as the thread's, and the
//     handler would resume the stub in ring 3 (seen as goroutines resumed
//     with SP outside their stack, and handlers reading the ring-0 stack);
//   - the thread was interrupted halfway through changing its alternate
//     stack or a signal action in the shim: a frame built now would use a
//     mix of old and new. The shim checks for pending signals once the
//     change is whole (NR_SIGCHECK), which brings the thread back.
func (t *thread) signalsHeld() bool {
	run := t.cpu.k.Run
	if run.Events().ExceptionInFlight() || run.Sregs().CS.Selector&3 != 3 {
		return true
	}
	if _, ok := t.altStack(); !ok {
		return true
	}
	rip := run.Regs().RIP
	return rip >= shimBase+shim.Sigaction && rip < shimBase+shim.SigactionEnd
}

// faultSignal delivers a synchronous signal raised by an exception at u.
// Like Linux, a fault that is blocked or has no handler kills the guest.
func (t *thread) faultSignal(info siginfo, u userState, vector int) bool {
	sig := int(info.signo)
	act := t.m.action(sig)
	if act.handler <= sigIGN || t.mask()&bit(sig) != 0 {
		t.crash(fmt.Sprintf("%s at %#x (error code %#x; signal %d, no handler)", vectorName(vector), info.addr, info.err, sig), &u)
		return true
	}
	// The exception left the vCPU in ring 0; the handler runs in ring 3.
	userSegments(t.cpu.k.Run.Sregs())
	t.cpu.k.Run.MarkDirty(kvm.SyncRegsSregs)
	if err := t.setupFrame(sig, info, act, u); err != nil {
		t.crash(fmt.Sprintf("cannot deliver signal %d for %s: %v", sig, vectorName(vector), err), &u)
		return true
	}
	return false
}

// setupFrame builds the rt_sigframe for sig and points the vCPU at the
// handler, by way of the shim's signal entry, which saves the interrupted
// vector state into the frame (shim_amd64.S). The tender writes
// everything else: the general registers, the mask, the alternate stack,
// siginfo, and the XSAVE area's header and Linux's software-reserved
// words, so that the frame is laid out as Linux lays it out.
func (t *thread) setupFrame(sig int, info siginfo, act sigaction, u userState) error {
	m := t.m
	if act.flags&saRestorer == 0 || act.restorer == 0 {
		return fmt.Errorf("handler has no SA_RESTORER (the Mote ABI has no vDSO sigreturn)")
	}
	r := t.cpu.k.Run.Regs()
	sp := u.rsp
	alt, _ := t.altStack()
	onAlt := t.onAltStack(sp)
	if act.flags&saOnstack != 0 && alt.flags&ssDisable == 0 && !onAlt {
		sp = alt.sp + alt.size
	} else {
		sp -= 128 // the red zone
	}
	sp = (sp - uint64(len(m.fpArea))) &^ 63
	fp := sp
	ucFlags := uint64(0x6) // UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
	if m.xcr0 != 0 {
		ucFlags |= 0x1 // UC_FP_XSTATE
	}

	sp = (sp-frameSize)&^15 - 8
	frame := make([]byte, frameSize)
	le.PutUint64(frame[0:], act.restorer)
	uc := frame[ucOffset:]
	le.PutUint64(uc[0:], ucFlags)
	le.PutUint64(uc[16:], alt.sp)
	altFlags := alt.flags
	if onAlt {
		altFlags |= ssOnstack
	}
	le.PutUint32(uc[24:], uint32(altFlags))
	le.PutUint64(uc[32:], alt.size)
	mc := uc[mcontextOffset:]
	for i, v := range []uint64{r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
		r.RDI, r.RSI, r.RBP, r.RBX, r.RDX, r.RAX, r.RCX, u.rsp, u.rip, u.rflags} {
		le.PutUint64(mc[8*i:], v)
	}
	le.PutUint16(mc[144:], selUserCS)
	le.PutUint16(mc[150:], selUserDS)
	le.PutUint64(mc[152:], info.err)
	le.PutUint64(mc[160:], info.trapno)
	le.PutUint64(mc[168:], t.mask())
	le.PutUint64(mc[176:], info.addr) // cr2
	le.PutUint64(mc[184:], fp)
	le.PutUint64(uc[sigmaskOffset:], t.mask())
	in := frame[infoOffset:]
	le.PutUint32(in[0:], uint32(sig))
	le.PutUint32(in[8:], uint32(info.code))
	switch info.code {
	case siUser, siTkill:
		le.PutUint32(in[16:], uint32(info.pid))
		le.PutUint32(in[20:], uint32(info.uid))
	case siTimer: // si_timerid, si_overrun, si_value
		le.PutUint32(in[16:], uint32(info.pid))
		le.PutUint32(in[20:], uint32(info.uid))
		le.PutUint64(in[24:], info.addr)
	default:
		le.PutUint64(in[16:], info.addr)
	}
	// The whole XSAVE area is written (and so bound), so that the shim's
	// XSAVE into it cannot fault.
	if err := m.mem.copyOut(fp, m.fpArea); err != nil {
		return fmt.Errorf("writing the signal frame at %#x: %w", fp, err)
	}
	if err := m.mem.copyOut(sp, frame); err != nil {
		return fmt.Errorf("writing the signal frame at %#x: %w", sp, err)
	}
	mask := t.mask() | act.mask
	if act.flags&saNodefer == 0 {
		mask |= bit(sig)
	}
	t.setMask(mask)

	entry := uint64(shimBase + shim.SigenterFXSAVE)
	if m.xcr0 != 0 {
		entry = shimBase + shim.SigenterXSAVE
	}
	r.RDI, r.RSI, r.RDX, r.RAX = uint64(sig), sp+infoOffset, sp+ucOffset, act.handler
	t.resume(userState{rip: entry, rsp: sp, rflags: u.rflags})
	t.m.stats.count(&t.m.stats.signals)
	return nil
}

// fpTemplate is the vector-state area of a signal frame before the shim's
// XSAVE fills it: Linux's layout. With XSAVE: the XSAVE area (its header
// zeroed, as XSAVE leaves untouched the header bytes it does not own and
// XRSTOR refuses any but zeros there), the software-reserved words
// (FP_XSTATE_MAGIC1, the frame's extended size, the features saved, the
// XSAVE size) and FP_XSTATE_MAGIC2 just past it; the shim's XSAVE saves
// the features written there and no others, so it stays inside the area.
// Without: the 512 bytes of FXSAVE.
func (m *machine) fpTemplate() []byte {
	if m.xcr0 == 0 {
		return make([]byte, 512)
	}
	b := make([]byte, m.xsize+4)
	sw := b[464:]
	le.PutUint32(sw[0:], fpMagic1)
	le.PutUint32(sw[4:], uint32(len(b)))   // extended_size
	le.PutUint64(sw[8:], m.xcr0)           // xfeatures
	le.PutUint32(sw[16:], uint32(m.xsize)) // xstate_size
	le.PutUint32(b[m.xsize:], fpMagic2)
	return b
}

// sysRtSigreturn restores the context saved by setupFrame (possibly edited
// by the handler). rsp is the stack pointer at the system call: the
// handler's return popped the return address, so the ucontext is at rsp.
// fpDone says the shim has already restored the vector state from the
// frame (NRSigreturn); a raw rt_sigreturn (a site the tender did not
// rewrite) has the tender restore it through KVM.
func (t *thread) sysRtSigreturn(rsp uint64, fpDone bool) error {
	m := t.m
	uc := make([]byte, ucSize)
	if err := m.mem.copyIn(rsp, uc); err != nil {
		return fmt.Errorf("reading the signal frame at %#x: %w", rsp, err)
	}
	mc := uc[mcontextOffset:]
	g := func(i int) uint64 { return le.Uint64(mc[8*i:]) }
	r := t.cpu.k.Run.Regs()
	r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15 = g(0), g(1), g(2), g(3), g(4), g(5), g(6), g(7)
	r.RDI, r.RSI, r.RBP, r.RBX, r.RDX, r.RAX, r.RCX = g(8), g(9), g(10), g(11), g(12), g(13), g(14)
	u := userState{rsp: g(15), rip: g(16), rflags: g(17)&0x40dd5 | rflagsDefault}
	t.setMask(le.Uint64(uc[sigmaskOffset:]))
	if fp := le.Uint64(mc[184:]); fp != 0 && !fpDone {
		if err := t.restoreFP(fp); err != nil {
			return err
		}
	}
	t.resume(u)
	return nil
}

// restoreFP loads the vector state saved at fp in a signal frame into the
// vCPU through KVM_SET_XSAVE: what the shim's XRSTOR does for a rewritten
// rt_sigreturn.
func (t *thread) restoreFP(fp uint64) error {
	m := t.m
	buf := make([]byte, m.xsize)
	if m.xcr0 == 0 {
		buf = buf[:512]
	}
	if err := m.mem.copyIn(fp, buf); err != nil {
		return fmt.Errorf("reading the saved FPU state at %#x: %w", fp, err)
	}
	xfeatures := uint64(3) // x87 and SSE: all an FXSAVE area holds
	if le.Uint32(buf[464:]) == fpMagic1 {
		xfeatures = le.Uint64(buf[472:])
	} else {
		buf = buf[:512]
	}
	var xs kvm.XSAVE
	for i := 0; i < len(buf)/4; i++ {
		xs.Region[i] = le.Uint32(buf[4*i:])
	}
	// The software-reserved bytes are Linux's, not the CPU's.
	for i := 464 / 4; i < 512/4; i++ {
		xs.Region[i] = 0
	}
	// As XRSTOR with the frame's features: a component the frame holds
	// comes from the frame, the others are reset. Without a header (an
	// FXSAVE frame), the legacy area is x87 and SSE state.
	bv := uint64(3)
	if len(buf) > 512 {
		bv = (uint64(xs.Region[512/4]) | uint64(xs.Region[512/4+1])<<32) & xfeatures & m.xcr0
		for i := 520 / 4; i < 576/4; i++ {
			xs.Region[i] = 0
		}
	}
	xs.Region[512/4], xs.Region[512/4+1] = uint32(bv), uint32(bv>>32)
	if err := t.cpu.k.SetXSAVE(&xs); err != nil {
		return fmt.Errorf("restoring the saved FPU state: %w", err)
	}
	return nil
}
