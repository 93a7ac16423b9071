// Command refusedthenpanic is refused a large mapping (more than its
// memory may commit), goes on, and then panics for another reason: its
// death is a panic (status 2), not out of memory.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	_, err := syscall.Mmap(-1, 0, 64<<30, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	fmt.Println("64 GiB mapping:", err)
	panic("something else went wrong")
}
