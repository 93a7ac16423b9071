// Command mapkernel reaches, with raw system calls, for the tender's pages
// in an hvt guest's address space — the SYSCALL entry page, and the
// doorbell page, which is MMIO, not memory — as a confused or hostile
// program might: it maps over them, and hands the doorbell to the tender
// as a buffer. Each call must fail, and the tender must go on serving.
// With an argument it then maps pages, alternately PROT_NONE and
// PROT_READ so that no two merge, until refused.
package main

import (
	"fmt"
	"os"
	"syscall"
)

const (
	kernBase = 0x7f8000000000 // host/hvt/memory.go
	entry    = kernBase + 0x2000
	doorbell = kernBase + 0x3000
)

func main() {
	mmap := func(addr, flags uintptr) (uintptr, syscall.Errno) {
		r, _, e := syscall.RawSyscall6(syscall.SYS_MMAP, addr, 4096, syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|flags, ^uintptr(0), 0)
		return r, e
	}
	_, e := mmap(doorbell, syscall.MAP_FIXED)
	fmt.Println("mmap fixed over the doorbell:", e)
	_, _, e = syscall.RawSyscall(syscall.SYS_MADVISE, doorbell, 4096, syscall.MADV_DONTNEED)
	fmt.Println("madvise the doorbell away:", e)
	_, _, e = syscall.RawSyscall(syscall.SYS_MUNMAP, entry, 8192, 0)
	fmt.Println("munmap the entry and doorbell pages:", e)
	_, _, e = syscall.RawSyscall(syscall.SYS_MPROTECT, entry, 4096, syscall.PROT_READ|syscall.PROT_WRITE)
	fmt.Println("mprotect the entry page:", e)
	r, e := mmap(entry, 0)
	fmt.Println("mmap with a hint at the entry page placed elsewhere:", e == 0 && r != entry)
	_, _, e = syscall.RawSyscall(syscall.SYS_WRITE, 1, doorbell, 1)
	fmt.Println("write from the doorbell:", e)
	_, _, e = syscall.RawSyscall6(syscall.SYS_FUTEX, doorbell, 1 /* FUTEX_WAKE */, 1, 0, 0, 0)
	fmt.Println("futex on the doorbell:", e)
	fmt.Println("system calls still answered:", syscall.Getpid() > 0)
	if len(os.Args) > 1 {
		n := 0
		for ; n < 1<<20; n++ {
			_, _, e := syscall.RawSyscall6(syscall.SYS_MMAP, 0, 4096, uintptr(n%2)*syscall.PROT_READ,
				syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS, ^uintptr(0), 0)
			if e != 0 {
				fmt.Println("mappings refused after", n/1000*1000, "or more:", e)
				break
			}
		}
	}
}
