// Command textwrite tries to change its own program text three ways: by
// having the host write into it (getrandom), by making it writable
// (mprotect), and by storing into it. Each must fail, on hvt because the
// text may be pages shared with every other instance of the image.
package main

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// sysGetrandom is getrandom(2), which package syscall does not name.
const sysGetrandom = 318

func main() {
	text := reflect.ValueOf(main).Pointer()
	page := text &^ 4095

	_, _, e := syscall.RawSyscall(sysGetrandom, text, 16, 0)
	fmt.Println("getrandom into text:", e)

	_, _, e = syscall.RawSyscall(syscall.SYS_MPROTECT, page, 4096, syscall.PROT_READ|syscall.PROT_WRITE)
	fmt.Println("mprotect text writable:", e)

	debug.SetPanicOnFault(true)
	func() {
		defer func() { fmt.Println("store into text:", recover() != nil) }()
		*(*byte)(unsafe.Pointer(text)) = 0xcc
	}()
	fmt.Println("text intact:", *(*byte)(unsafe.Pointer(text)) != 0xcc)
}
