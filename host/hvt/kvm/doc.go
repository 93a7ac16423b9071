// Package kvm is a thin, typed layer over the Linux KVM ioctl interface for
// x86-64: the system, VM and vCPU descriptors, the shared kvm_run page with
// synchronized registers, and the register, CPUID, MSR and XSAVE structures.
//
// It holds no policy: what the guest looks like is the tender's business
// (package hvt). Structure layouts follow <linux/kvm.h> and
// <asm/kvm.h> for x86-64 and are checked by size tests.
package kvm
