// Package sysnames names x86-64 Linux system calls by number, for the
// reports of the tenders (a call outside the Mote ABI is named, not just
// numbered). The table is generated from <asm/unistd_64.h> by gen.sh.
package sysnames

import "fmt"

// Name returns the call's name, or "syscall N" for a number Linux does
// not define.
func Name(nr uint64) string {
	if n, ok := names[nr]; ok {
		return n
	}
	return fmt.Sprintf("syscall %d", nr)
}
