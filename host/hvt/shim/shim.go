package shim

// The shim's memory, from its base: the code page, the process page, then
// ThreadPages pages of 64-byte thread blocks. Offsets must match
// shim_amd64.S.
const (
	ProcOffset    = 0x1000
	ThreadsOffset = 0x2000
	ThreadPages   = 16
	ThreadSize    = 64
	MaxThreads    = ThreadPages * 4096 / ThreadSize
	Size          = ThreadsOffset + ThreadPages*4096
)

// Process page.
const (
	ProcCPUMask = 0  // uint64: sched_getaffinity's answer
	ProcPending = 8  // uint64: signals pending for the whole process
	ProcActions = 64 // per signal n at ProcActions+n*ActionSize: seq, handler, flags, restorer, mask
	ActionSize  = 40
)

// Thread block (at the thread's GS base), in 64-bit words.
const (
	WordTID = iota
	WordMask
	WordAltSP
	WordAltFlags
	WordAltSize
	WordPending
	WordAltSeq // odd while the shim changes the alternate stack
)

// Doorbell is the guest-virtual page whose write exits to the tender as a
// system call (it is mapped to guest-physical memory that no slot backs).
const Doorbell = 0x7f8000003000

// NRSigcheck is the tender's private call number: "deliver any signal that
// became deliverable, and return 0".
const NRSigcheck = 0x10000

// NRSigreturn is the tender's private rt_sigreturn: the shim has already
// restored the vector state from the frame, the tender restores the rest.
const NRSigreturn = 0x10001

// Signal entry points (see shim_amd64.S): the tender starts a handler at
// SigenterXSAVE, or at SigenterFXSAVE where the guest has no XSAVE, with
// the handler's address in RAX. A fault at an offset in [SignalStart,
// SignalEnd) is a bad signal frame, never a call's EFAULT.
const (
	SigenterXSAVE  = off_sigenter_xsave
	SigenterFXSAVE = off_sigenter_fxsave
	SignalStart    = off_signal
	SignalEnd      = off_signal_end
)

// Sigaction and SigactionEnd bound rt_sigaction's entry: a thread
// interrupted there may be halfway through changing an action.
const (
	Sigaction    = off_rt_sigaction
	SigactionEnd = off_rt_sigaction_end
)

// Entry returns the shim's entry point for system call nr, if it has one.
func Entry(nr uint64) (off uint64, ok bool) {
	switch nr {
	case 13:
		return off_rt_sigaction, true
	case 14:
		return off_rt_sigprocmask, true
	case 15:
		return off_rt_sigreturn, true
	case 35:
		return off_nanosleep, true
	case 39:
		return off_getpid, true
	case 131:
		return off_sigaltstack, true
	case 186:
		return off_gettid, true
	case 204:
		return off_sched_getaffinity, true
	// Answered by the tender, entered from ring 3 (shim_amd64.S, DOOR).
	case 0:
		return off_read, true
	case 1:
		return off_write, true
	case 3:
		return off_close, true
	case 9:
		return off_mmap, true
	case 11:
		return off_munmap, true
	case 24:
		return off_sched_yield, true
	case 27:
		return off_mincore, true
	case 28:
		return off_madvise, true
	case 56:
		return off_clone, true
	case 202:
		return off_futex, true
	case 231:
		return off_exit_group, true
	case 234:
		return off_tgkill, true
	case 257:
		return off_openat, true
	}
	return 0, false
}

// Functions are the Go runtime's system-call wrappers whose sites the
// tender rewrites into calls to the shim.
var Functions = []string{
	"runtime.rt_sigaction",
	"runtime.rtsigprocmask",
	"runtime.sigaltstack",
	"runtime.gettid",
	"runtime.getpid",
	"runtime.raise",
	"runtime.raiseproc",
	"runtime.clone",
	"runtime.sched_getaffinity",
	"runtime.usleep",
	"runtime.read",
	"runtime.write1",
	"runtime.closefd",
	"runtime.open",
	"runtime.sysMmap",
	"runtime.sysMunmap",
	"runtime.osyield",
	"runtime.mincore",
	"runtime.madvise",
	"runtime.futex",
	"runtime.exit",
	"runtime.tgkill",
	"runtime.sigreturn__sigaction",
	// Never runtime.exitThread: see shim_amd64.S.
}

// Syscall6 is the Go runtime's generic system call, whose
// `mov %rbx, %rdi; syscall` (Syscall6Site) the tender rewrites into a call
// to Syscall6Entry; the call number is in RAX.
const (
	Syscall6      = "internal/runtime/syscall/linux.Syscall6"
	Syscall6Entry = off_syscall6
)

// Syscall6Site is the instruction pair the tender replaces in Syscall6.
var Syscall6Site = []byte{0x48, 0x89, 0xdf, 0x0f, 0x05}

// VDSOMult is the guest address of the vDSO data page's scale word, which
// the shim's nanosleep reads (the tender maps the vDSO at a fixed address).
const VDSOMult = 0x7ffff7ff1010
