// Command forbidden asks for a socket, which the Mote ABI does not have.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	fmt.Println("asking for a socket")
	_, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	fmt.Println("socket:", err)
}
