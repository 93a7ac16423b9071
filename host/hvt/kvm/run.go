package kvm

import (
	"sync/atomic"
	"unsafe"
)

// Exit reasons (kvm_run.exit_reason) the tender handles.
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

// ExitName names an exit reason for reports.
func ExitName(r uint32) string {
	switch r {
	case ExitUnknown:
		return "unknown"
	case ExitException:
		return "exception"
	case ExitIO:
		return "io"
	case ExitHLT:
		return "hlt"
	case ExitMMIO:
		return "mmio"
	case ExitShutdown:
		return "shutdown (triple fault)"
	case ExitFailEntry:
		return "entry failure"
	case ExitIntr:
		return "interrupted"
	case ExitInternalError:
		return "internal error"
	case ExitSystemEvent:
		return "system event"
	}
	return "reason " + itoa(uint64(r))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// runHeader mirrors the fixed part of struct kvm_run up to the exit union.
type runHeader struct {
	RequestInterruptWindow uint8
	ImmediateExit          uint8
	_                      [6]uint8
	ExitReason             uint32
	ReadyForInjection      uint8
	IFFlag                 uint8
	Flags                  uint16
	CR8                    uint64
	APICBase               uint64
	exit                   [256]byte
	ValidRegs              uint64
	DirtyRegs              uint64
	Sync                   SyncRegs
}

// Run is a vCPU's shared kvm_run page.
type Run struct {
	p *runHeader
}

// ExitReason is why the last KVM_RUN returned.
func (r Run) ExitReason() uint32 { return r.p.ExitReason }

// SetImmediateExit makes the next (or a racing) KVM_RUN return EINTR at
// once; it is how another thread kicks this vCPU without losing the kick
// to the window between a check and the ioctl.
func (r Run) SetImmediateExit(on bool) {
	// Bytes 0-3 are request_interrupt_window, immediate_exit and padding;
	// the tender never requests an interrupt window, so one aligned 32-bit
	// store sets immediate_exit atomically.
	var v uint32
	if on {
		v = 1 << 8
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(r.p)), v)
}

// IO describes a KVM_EXIT_IO: the port and direction.
func (r Run) IO() (port uint16, out bool, size uint8) {
	e := r.p.exit[:]
	return uint16(e[2]) | uint16(e[3])<<8, e[0] == 1, e[1]
}

// InternalError returns the suberror and data of a KVM_EXIT_INTERNAL_ERROR.
func (r Run) InternalError() (suberror uint32, data []uint64) {
	e := r.p.exit[:]
	sub := *(*uint32)(unsafe.Pointer(&e[0]))
	n := *(*uint32)(unsafe.Pointer(&e[4]))
	if n > 16 {
		n = 16
	}
	d := (*[16]uint64)(unsafe.Pointer(&e[8]))
	return sub, append([]uint64(nil), d[:n]...)
}

// FailEntryReason returns the hardware reason of a KVM_EXIT_FAIL_ENTRY.
func (r Run) FailEntryReason() uint64 {
	return *(*uint64)(unsafe.Pointer(&r.p.exit[0]))
}

// Regs are the synchronized general registers (valid after an exit when
// sync registers are enabled).
func (r Run) Regs() *Regs { return &r.p.Sync.Regs }

// Sregs are the synchronized special registers.
func (r Run) Sregs() *Sregs { return &r.p.Sync.Sregs }

// Events are the synchronized pending events (with SyncRegsEvents valid).
func (r Run) Events() *VCPUEvents { return &r.p.Sync.Events }

// MarkDirty tells KVM to load the given synchronized register sets
// (SyncRegsGPRs, SyncRegsSregs) on the next KVM_RUN.
func (r Run) MarkDirty(sets uint64) { r.p.DirtyRegs |= sets }

// SetValid selects which register sets KVM fills in on every exit.
func (r Run) SetValid(sets uint64) { r.p.ValidRegs = sets }

// MMIO describes a KVM_EXIT_MMIO: the guest-physical address and whether
// the access was a write.
func (r Run) MMIO() (addr uint64, write bool) {
	e := r.p.exit[:]
	return *(*uint64)(unsafe.Pointer(&e[0])), e[20] != 0
}
