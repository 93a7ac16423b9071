// Command bigbss has 64 MiB of zero-initialised globals (.bss) and touches
// them all: memory the guest dirties like any other, which must count
// against -m.
package main

import "fmt"

var big [64 << 20]byte

func main() {
	for i := 0; i < len(big); i += 4096 {
		big[i] = byte(i >> 12)
	}
	sum := 0
	for i := 0; i < len(big); i += 4096 {
		sum += int(big[i])
	}
	fmt.Println("touched 64 MiB of .bss:", sum)
}
