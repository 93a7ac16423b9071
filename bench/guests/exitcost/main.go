// Command exitcost measures what common system calls cost the program,
// printing "name µs-per-call" lines; run natively and under hvt, the
// difference is the cost of the tender.
package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func measure(name string, n int, f func()) {
	f()
	start := time.Now()
	for i := 0; i < n; i++ {
		f()
	}
	fmt.Printf("%s %.3f\n", name, float64(time.Since(start).Nanoseconds())/float64(n)/1e3)
}

func main() {
	runtime.GOMAXPROCS(1)
	measure("clock_gettime(vDSO)", 200000, func() { time.Now() })
	measure("getpid", 2000, func() { syscall.Getpid() })
	measure("sched_yield", 2000, func() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) })
	measure("write(stderr,0B)", 2000, func() { syscall.Write(2, nil) })
	var ts syscall.Timespec
	measure("nanosleep(0)", 2000, func() { syscall.Nanosleep(&ts, nil) })
	buf := make([]byte, 64)
	measure("getrandom(64B)", 2000, func() { syscall.Syscall(318, uintptr(unsafePointer(buf)), 64, 0) })
	var sa [4]uint64
	measure("rt_sigaction(get)", 2000, func() { runtimeSigactionProbe(&sa) })
	// Two goroutines locked to their own threads pass a token back and
	// forth: each pass is a futex wake and a futex wait, and the time the
	// host takes to run the other thread.
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		for range ping {
			pong <- struct{}{}
		}
	}()
	runtime.LockOSThread()
	measure("thread-hand-off(round-trip)", 500, func() { ping <- struct{}{}; <-pong })
	os.Stdout.Sync()
}
