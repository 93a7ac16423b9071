// Command goroutines passes values through a ring of goroutines and fans
// work out over channels, printing deterministic totals.
package main

import (
	"fmt"
	"sync"
)

func main() {
	const n = 500
	first := make(chan int)
	in := first
	for i := 0; i < n; i++ {
		out := make(chan int)
		go func(in <-chan int, out chan<- int) {
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(in, out)
		in = out
	}
	go func() {
		for i := 0; i < 100; i++ {
			first <- i
		}
		close(first)
	}()
	sum := 0
	for v := range in {
		sum += v
	}
	fmt.Println("ring sum:", sum)

	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := 0
			for i := 0; i < 10000; i++ {
				s += i % (w + 1)
			}
			mu.Lock()
			total += s
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	fmt.Println("fan-out total:", total)
}
