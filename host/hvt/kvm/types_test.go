package kvm

import (
	"testing"
	"unsafe"
)

// The sizes and offsets below are those of the C structures in
// <linux/kvm.h> for x86-64; a mismatch would corrupt every ioctl.
func TestLayouts(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_msr_entry", unsafe.Sizeof(MSR{}), 16},
		{"kvm_xsave", unsafe.Sizeof(XSAVE{}), 4096},
		{"kvm_vcpu_events", unsafe.Sizeof(VCPUEvents{}), 64},
		{"kvm_vcpu_events.exception.error_code offset", unsafe.Offsetof(VCPUEvents{}.ExceptionErrorCode), 4},
		{"kvm_xcrs", unsafe.Sizeof(XCRs{}), 392},
		{"kvm_userspace_memory_region", unsafe.Sizeof(userspaceMemoryRegion{}), 32},
		{"kvm_ioeventfd", unsafe.Sizeof(ioEventFD{}), 64},
		{"kvm_enable_cap", unsafe.Sizeof(enableCap{}), 104},
		{"kvm_run.kvm_valid_regs offset", unsafe.Offsetof(runHeader{}.ValidRegs), 288},
		{"kvm_run.s offset", unsafe.Offsetof(runHeader{}.Sync), 304},
	} {
		if c.got != c.want {
			t.Errorf("%s: size/offset %d, want %d", c.name, c.got, c.want)
		}
	}
}
