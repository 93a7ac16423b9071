// Command parallel checks that GOMAXPROCS follows the CPUs the guest is
// given and that goroutines really run in parallel on them.
package main

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

func main() {
	fmt.Println("NumCPU:", runtime.NumCPU(), "GOMAXPROCS:", runtime.GOMAXPROCS(0))
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < runtime.GOMAXPROCS(0); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			x := 1
			for i := 0; i < 200_000_000 && peak.Load() < int32(runtime.GOMAXPROCS(0)); i++ {
				x = x*31 + i
			}
			_ = x
			running.Add(-1)
		}()
	}
	wg.Wait()
	fmt.Println("ran in parallel:", peak.Load() == int32(runtime.GOMAXPROCS(0)))
}
