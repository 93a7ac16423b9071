// Command clockreads reads the clock many times; under the tender the
// reads go through the vDSO and cost no exit.
package main

import (
	"fmt"
	"time"
)

func main() {
	start := time.Now()
	var last time.Time
	backwards := 0
	for i := 0; i < 200000; i++ {
		now := time.Now()
		if now.Before(last) {
			backwards++
		}
		last = now
	}
	fmt.Println("clock went backwards:", backwards, "elapsed positive:", time.Since(start) > 0)
}
