// Command portio tries port I/O from user mode, as a hostile program might
// to fake the exits by which the tender learns of exceptions (ports 0–31)
// or system calls. Linux refuses `out` to a process without ioperm: the
// CPU raises a general-protection fault, the process gets SIGSEGV. Each
// attempt here must fault in the same way and change nothing else.
package main

import (
	"fmt"
	"runtime/debug"
)

// out executes `out %al, $port` for one of the ports below.
func out14()
func out13()
func out128()
func out255()

func try(name string, f func()) {
	defer func() { fmt.Printf("%s: %v\n", name, recover()) }()
	f()
}

func main() {
	debug.SetPanicOnFault(true) // a SIGSEGV with SI_KERNEL becomes a panic
	try("out $14 (page fault)", out14)
	try("out $13 (general protection)", out13)
	try("out $0x80", out128)
	try("out $0xff", out255)
	fmt.Println("still running")
}
