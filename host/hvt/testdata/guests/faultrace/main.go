// Command faultrace recovers from nil dereferences in a loop while other
// goroutines spin, so that preemption signals (SIGURG) keep arriving as
// the faults are raised: a signal must never be delivered on top of a
// fault that is still on its way (the fault goes first), or the handler
// would be entered with the fault's state and the program killed.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

type T struct{ x [64]int }

var sink atomic.Int64

//go:noinline
func deref(p *T, i int) (v int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return p.x[i&63], true
}

func main() {
	var stop atomic.Bool
	for i := 0; i < 3; i++ {
		go func() {
			x := 1
			for !stop.Load() {
				for j := 0; j < 1_000_000; j++ { // no preemption point
					x = x*31 + j
				}
				sink.Add(int64(x))
			}
		}()
	}
	// A GC now and then stops the world, which preempts the spinners.
	go func() {
		for !stop.Load() {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
	const n = 20000
	recovered := 0
	for i := 0; i < n; i++ {
		if _, ok := deref(nil, i); !ok {
			recovered++
		}
	}
	stop.Store(true)
	if recovered != n {
		fmt.Printf("recovered %d of %d\n", recovered, n)
		os.Exit(1)
	}
	fmt.Println("recovered every fault:", n)
}
