package main

import (
	"syscall"
	"unsafe"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// runtimeSigactionProbe reads SIGWINCH's action the way the runtime's own
// wrapper does not (through syscall.RawSyscall6), so it measures the full
// system-call path; the runtime's rewritten sites are faster still.
func runtimeSigactionProbe(sa *[4]uint64) {
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGWINCH), 0, uintptr(unsafe.Pointer(sa)), 8, 0, 0)
}
