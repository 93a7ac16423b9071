// Command burn spends its time in one function, burn, so that a CPU
// profile of it taken from outside has an obvious answer.
package main

import "fmt"

//go:noinline
func burn(n int) uint64 {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func main() {
	var sum uint64
	for i := 0; i < 8; i++ {
		sum += burn(50_000_000)
	}
	fmt.Println("burnt", sum != 0)
}
