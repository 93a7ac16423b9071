package kvm

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System is an open /dev/kvm.
type System struct {
	fd       int
	mmapSize int
}

// Open opens /dev/kvm and checks the API version and the capabilities the
// tender cannot do without.
func Open() (*System, error) {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/kvm", Err: err}
	}
	s := &System{fd: fd}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, ioctlErr("KVM_GET_API_VERSION", err)
	}
	if v != 12 {
		s.Close()
		return nil, fmt.Errorf("kvm: API version %d, want 12", v)
	}
	for _, c := range []struct {
		cap  uintptr
		name string
	}{{CapUserMemory, "KVM_CAP_USER_MEMORY"}, {CapSyncRegs, "KVM_CAP_SYNC_REGS"}, {CapXSAVE, "KVM_CAP_XSAVE"}, {CapXCRS, "KVM_CAP_XCRS"}, {CapExtCPUID, "KVM_CAP_EXT_CPUID"}} {
		if n, _ := s.Check(c.cap); n == 0 {
			s.Close()
			return nil, fmt.Errorf("kvm: %s is not supported by this host", c.name)
		}
	}
	n, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, ioctlErr("KVM_GET_VCPU_MMAP_SIZE", err)
	}
	s.mmapSize = int(n)
	return s, nil
}

// Close closes /dev/kvm.
func (s *System) Close() error { return unix.Close(s.fd) }

// Check returns KVM_CHECK_EXTENSION's answer for a capability.
func (s *System) Check(cap uintptr) (int, error) {
	r, err := ioctl(s.fd, kvmCheckExtension, cap)
	return int(r), err
}

// SupportedCPUID returns the CPUID entries KVM can present to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	for n := 64; n <= 4096; n *= 2 {
		buf := make([]byte, 8+n*int(unsafe.Sizeof(CPUIDEntry{})))
		*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(n)
		_, err := ioctl(s.fd, kvmGetSupportedCPUID, uintptr(unsafe.Pointer(&buf[0])))
		if err == unix.E2BIG {
			continue
		}
		if err != nil {
			return nil, ioctlErr("KVM_GET_SUPPORTED_CPUID", err)
		}
		got := *(*uint32)(unsafe.Pointer(&buf[0]))
		ents := unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[8])), got)
		return append([]CPUIDEntry(nil), ents...), nil
	}
	return nil, fmt.Errorf("kvm: KVM_GET_SUPPORTED_CPUID: too many entries")
}

// VM is a KVM virtual machine.
type VM struct {
	sys *System
	fd  int
}

// CreateVM creates an empty VM.
func (s *System) CreateVM() (*VM, error) {
	fd, err := ioctl(s.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, ioctlErr("KVM_CREATE_VM", err)
	}
	unix.CloseOnExec(int(fd))
	return &VM{sys: s, fd: int(fd)}, nil
}

// Close releases the VM (once all its vCPUs are closed too).
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// SetMemory maps host memory [mem] at guest physical address gpa as slot.
func (vm *VM) SetMemory(slot uint32, gpa uint64, mem []byte) error {
	return vm.setMemory(slot, 0, gpa, mem)
}

// SetReadOnlyMemory is SetMemory for memory the guest may only read: a
// guest store to it exits as MMIO (KVM_MEM_READONLY), at any privilege.
// It needs CapReadOnlyMem.
func (vm *VM) SetReadOnlyMemory(slot uint32, gpa uint64, mem []byte) error {
	return vm.setMemory(slot, memReadOnly, gpa, mem)
}

func (vm *VM) setMemory(slot, flags uint32, gpa uint64, mem []byte) error {
	r := userspaceMemoryRegion{
		Slot:          slot,
		Flags:         flags,
		GuestPhysAddr: gpa,
		MemorySize:    uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
	}
	if _, err := ioctl(vm.fd, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&r))); err != nil {
		return ioctlErr("KVM_SET_USER_MEMORY_REGION", err)
	}
	return nil
}

// IOEventFD makes a guest's 4-byte store to guest-physical address gpa,
// which no memory slot may back, signal the eventfd fd inside the host
// kernel: the vCPU is re-entered at once, and the tender never sees the
// exit. It is the cheapest notification a guest can send (a third of an
// exit to the tender on kvm-pvm).
func (vm *VM) IOEventFD(gpa uint64, fd int) error {
	r := ioEventFD{Addr: gpa, Len: 4, FD: int32(fd)}
	if _, err := ioctl(vm.fd, kvmIOEventFD, uintptr(unsafe.Pointer(&r))); err != nil {
		return ioctlErr("KVM_IOEVENTFD", err)
	}
	return nil
}

// SetTSSAddr sets the three-page region KVM needs on Intel hosts for
// real-mode emulation; it must not overlap guest memory.
func (vm *VM) SetTSSAddr(gpa uint64) error {
	if _, err := ioctl(vm.fd, kvmSetTSSAddr, uintptr(gpa)); err != nil {
		return ioctlErr("KVM_SET_TSS_ADDR", err)
	}
	return nil
}

// VCPU is a virtual CPU and its shared kvm_run page.
type VCPU struct {
	fd  int
	run []byte
	Run Run
}

// CreateVCPU creates vCPU id and maps its kvm_run page.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, ioctlErr(fmt.Sprintf("KVM_CREATE_VCPU %d", id), err)
	}
	unix.CloseOnExec(int(fd))
	mem, err := unix.Mmap(int(fd), 0, vm.sys.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("kvm: mmap kvm_run: %w", err)
	}
	return &VCPU{fd: int(fd), run: mem, Run: Run{p: (*runHeader)(unsafe.Pointer(&mem[0]))}}, nil
}

// Close unmaps the kvm_run page and closes the vCPU.
func (c *VCPU) Close() error {
	unix.Munmap(c.run)
	return unix.Close(c.fd)
}

// Run enters the guest until the next exit. It returns EINTR when a signal
// or an immediate-exit request interrupted it.
func (c *VCPU) RunOnce() error {
	_, err := ioctl(c.fd, kvmRun, 0)
	return err
}

// EnableCap enables a vCPU capability.
func (c *VCPU) EnableCap(cap uint32, args ...uint64) error {
	e := enableCap{Cap: cap}
	copy(e.Args[:], args)
	if _, err := ioctl(c.fd, kvmEnableCap, uintptr(unsafe.Pointer(&e))); err != nil {
		return ioctlErr("KVM_ENABLE_CAP", err)
	}
	return nil
}

// GetRegs reads the general registers.
func (c *VCPU) GetRegs(r *Regs) error {
	if _, err := ioctl(c.fd, kvmGetRegs, uintptr(unsafe.Pointer(r))); err != nil {
		return ioctlErr("KVM_GET_REGS", err)
	}
	return nil
}

// SetRegs writes the general registers.
func (c *VCPU) SetRegs(r *Regs) error {
	if _, err := ioctl(c.fd, kvmSetRegs, uintptr(unsafe.Pointer(r))); err != nil {
		return ioctlErr("KVM_SET_REGS", err)
	}
	return nil
}

// GetSregs reads the special registers.
func (c *VCPU) GetSregs(s *Sregs) error {
	if _, err := ioctl(c.fd, kvmGetSregs, uintptr(unsafe.Pointer(s))); err != nil {
		return ioctlErr("KVM_GET_SREGS", err)
	}
	return nil
}

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s *Sregs) error {
	if _, err := ioctl(c.fd, kvmSetSregs, uintptr(unsafe.Pointer(s))); err != nil {
		return ioctlErr("KVM_SET_SREGS", err)
	}
	return nil
}

// SetCPUID sets the CPUID the guest sees. It must precede SetSregs, since
// KVM checks CR4 bits against it.
func (c *VCPU) SetCPUID(ents []CPUIDEntry) error {
	sz := int(unsafe.Sizeof(CPUIDEntry{}))
	buf := make([]byte, 8+len(ents)*sz)
	*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(len(ents))
	copy(unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[8])), len(ents)), ents)
	if _, err := ioctl(c.fd, kvmSetCPUID2, uintptr(unsafe.Pointer(&buf[0]))); err != nil {
		return ioctlErr("KVM_SET_CPUID2", err)
	}
	return nil
}

// GetMSRs reads the model-specific registers named by msrs[i].Index into
// msrs[i].Data.
func (c *VCPU) GetMSRs(msrs []MSR) error {
	return c.msrs(kvmGetMSRs, "KVM_GET_MSRS", "read", msrs)
}

// SetMSRs writes model-specific registers.
func (c *VCPU) SetMSRs(msrs []MSR) error {
	return c.msrs(kvmSetMSRs, "KVM_SET_MSRS", "set", msrs)
}

// msrs makes the struct kvm_msrs ioctl req over msrs (its count, then the
// entries), copies the entries back (KVM_GET_MSRS fills them), and fails
// unless KVM took every one.
func (c *VCPU) msrs(req uintptr, name, verb string, msrs []MSR) error {
	buf := make([]byte, 8+len(msrs)*int(unsafe.Sizeof(MSR{})))
	*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(len(msrs))
	ents := unsafe.Slice((*MSR)(unsafe.Pointer(&buf[8])), len(msrs))
	copy(ents, msrs)
	n, err := ioctl(c.fd, req, uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return ioctlErr(name, err)
	}
	if int(n) != len(msrs) {
		return fmt.Errorf("kvm: %s: %s %d of %d (MSR %#x refused)", name, verb, n, len(msrs), msrs[n].Index)
	}
	copy(msrs, ents)
	return nil
}

// GetXSAVE reads the FPU and vector state.
func (c *VCPU) GetXSAVE(x *XSAVE) error {
	if _, err := ioctl(c.fd, kvmGetXSAVE, uintptr(unsafe.Pointer(x))); err != nil {
		return ioctlErr("KVM_GET_XSAVE", err)
	}
	return nil
}

// SetXSAVE writes the FPU and vector state; KVM refuses malformed state.
func (c *VCPU) SetXSAVE(x *XSAVE) error {
	if _, err := ioctl(c.fd, kvmSetXSAVE, uintptr(unsafe.Pointer(x))); err != nil {
		return ioctlErr("KVM_SET_XSAVE", err)
	}
	return nil
}

// SetXCRs writes extended control registers (XCR0).
func (c *VCPU) SetXCRs(x *XCRs) error {
	if _, err := ioctl(c.fd, kvmSetXCRS, uintptr(unsafe.Pointer(x))); err != nil {
		return ioctlErr("KVM_SET_XCRS", err)
	}
	return nil
}

// GetXCRs reads extended control registers.
func (c *VCPU) GetXCRs(x *XCRs) error {
	if _, err := ioctl(c.fd, kvmGetXCRS, uintptr(unsafe.Pointer(x))); err != nil {
		return ioctlErr("KVM_GET_XCRS", err)
	}
	return nil
}

// TSCKHz returns the guest TSC frequency in kHz.
func (c *VCPU) TSCKHz() (uint64, error) {
	r, err := ioctl(c.fd, kvmGetTSCKHz, 0)
	if err != nil {
		return 0, ioctlErr("KVM_GET_TSC_KHZ", err)
	}
	return uint64(r), nil
}
