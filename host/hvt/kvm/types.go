package kvm

// Regs is struct kvm_regs.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment is struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable (GDTR, IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8, EFER, APICBase    uint64
	InterruptBitmap        [4]uint64
}

// VCPUEvents is struct kvm_vcpu_events: what KVM has yet to deliver to
// the vCPU. The tender reads only the exception in flight.
type VCPUEvents struct {
	ExceptionInjected     uint8
	ExceptionNr           uint8
	ExceptionHasErrorCode uint8
	ExceptionPending      uint8
	ExceptionErrorCode    uint32
	_                     [56]byte
}

// ExceptionInFlight reports whether KVM holds an exception it will inject
// on the next entry (a fault it intercepted, or one whose delivery an exit
// interrupted).
func (e *VCPUEvents) ExceptionInFlight() bool {
	return e.ExceptionInjected != 0 || e.ExceptionPending != 0
}

// SyncRegs is struct kvm_sync_regs: the registers KVM mirrors in the
// kvm_run page when KVM_CAP_SYNC_REGS is enabled, so an exit needs no
// KVM_GET_REGS/KVM_SET_REGS ioctl.
type SyncRegs struct {
	Regs   Regs
	Sregs  Sregs
	Events VCPUEvents
}

// Bits of kvm_run.kvm_valid_regs and kvm_dirty_regs.
const (
	SyncRegsGPRs   = 1 << 0
	SyncRegsSregs  = 1 << 1
	SyncRegsEvents = 1 << 2
)

// CPUIDEntry is struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUIDFlagSignificantIndex is KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
const CPUIDFlagSignificantIndex = 1

// MSR is struct kvm_msr_entry.
type MSR struct {
	Index uint32
	_     uint32
	Data  uint64
}

// XSAVE is struct kvm_xsave: the guest's FPU and vector state in the
// standard (non-compacted) XSAVE layout.
type XSAVE struct {
	Region [1024]uint32
}

// XCR is struct kvm_xcr.
type XCR struct {
	XCR   uint32
	_     uint32
	Value uint64
}

// XCRs is struct kvm_xcrs.
type XCRs struct {
	NrXCRs uint32
	Flags  uint32
	XCRs   [16]XCR
	_      [16]uint64
}

type userspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// ioEventFD is struct kvm_ioeventfd.
type ioEventFD struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]byte
}

type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}
