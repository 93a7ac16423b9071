// Command preempt runs tight loops with no function calls while the
// garbage collector needs every goroutine stopped: it finishes only if
// asynchronous preemption (SIGURG) works.
package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

var sink atomic.Uint64

func spin(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		x := uint64(1)
		for i := 0; i < 50_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink.Add(x)
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	done := make(chan bool)
	go func() {
		x := uint64(1)
		for i := 0; i < 400_000_000; i++ { // no calls, no preemption points
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink.Add(x)
		done <- true
	}()
	time.Sleep(time.Millisecond)
	start := time.Now()
	runtime.GC() // must stop the spinning goroutine
	fmt.Println("GC completed while a goroutine spun:", time.Since(start) < 30*time.Second)
	<-done
	fmt.Println("spinner finished")
}
