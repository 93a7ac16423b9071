package kvm

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl request encoding, as <asm-generic/ioctl.h>.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
	kvmio    = 0xAE
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | kvmio<<8 | nr }
func io(nr uintptr) uintptr             { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr      { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr      { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr     { return ioc(iocRead|iocWrite, nr, size) }

var (
	kvmGetAPIVersion       = io(0x00)
	kvmCreateVM            = io(0x01)
	kvmCheckExtension      = io(0x03)
	kvmGetVCPUMmapSize     = io(0x04)
	kvmGetSupportedCPUID   = iowr(0x05, 8)
	kvmCreateVCPU          = io(0x41)
	kvmSetUserMemoryRegion = iow(0x46, unsafe.Sizeof(userspaceMemoryRegion{}))
	kvmSetTSSAddr          = io(0x47)
	kvmIOEventFD           = iow(0x79, unsafe.Sizeof(ioEventFD{}))
	kvmRun                 = io(0x80)
	kvmGetRegs             = ior(0x81, unsafe.Sizeof(Regs{}))
	kvmSetRegs             = iow(0x82, unsafe.Sizeof(Regs{}))
	kvmGetSregs            = ior(0x83, unsafe.Sizeof(Sregs{}))
	kvmSetSregs            = iow(0x84, unsafe.Sizeof(Sregs{}))
	kvmGetMSRs             = iowr(0x88, 8)
	kvmSetMSRs             = iow(0x89, 8)
	kvmSetCPUID2           = iow(0x90, 8)
	kvmGetTSCKHz           = io(0xA3)
	kvmEnableCap           = iow(0xA3, unsafe.Sizeof(enableCap{}))
	kvmGetXSAVE            = ior(0xA4, unsafe.Sizeof(XSAVE{}))
	kvmSetXSAVE            = iow(0xA5, unsafe.Sizeof(XSAVE{}))
	kvmGetXCRS             = ior(0xA6, unsafe.Sizeof(XCRs{}))
	kvmSetXCRS             = iow(0xA7, unsafe.Sizeof(XCRs{}))
)

// Capabilities used by the tender.
const (
	CapUserMemory  = 3
	CapSetTSSAddr  = 4
	CapExtCPUID    = 7
	CapMaxVCPUs    = 66
	CapSyncRegs    = 74
	CapXSAVE       = 55
	CapXCRS        = 56
	CapReadOnlyMem = 81
)

// memReadOnly is KVM_MEM_READONLY, a memory slot's flag.
const memReadOnly = 1 << 1

// ioctl issues a KVM ioctl, retrying on EINTR except for KVM_RUN, whose
// interruption the caller must see.
func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == unix.EINTR && req != kvmRun {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

func ioctlErr(what string, err error) error {
	return fmt.Errorf("kvm: %s: %w", what, err)
}
