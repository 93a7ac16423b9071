// Command crash takes SIGSEGV away from the Go runtime and then
// dereferences nil, so the fault is one nobody handles: the tender must
// report it with a backtrace.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

type sigactiont struct{ handler, flags, restorer, mask uint64 }

//go:noinline
func crashHere(p *int) int { return *p }

func main() {
	var sa sigactiont // SIG_DFL
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	fmt.Println("SIGSEGV reset to default:", e == 0)
	fmt.Println(crashHere(nil))
}
