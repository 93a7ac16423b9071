// Command threads makes N threads (argument 1): each of N goroutines locks
// itself to its own thread and sleeps, so the runtime must make a thread
// for every one. A guest is capped at 1024 threads on hvt and spt: beyond
// that clone fails with EAGAIN and the runtime stops the program.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			started.Done()
			time.Sleep(time.Hour)
		}()
	}
	started.Wait()
	fmt.Println("threads:", n)
}
