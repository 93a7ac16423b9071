// Command blockedwrites blocks 48 threads in 1 MiB writes to a pipe that
// nobody reads, says so, and waits: what the tender holds for the blocked
// calls must not grow with them.
package main

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

func main() {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // blocking, as the test wants
		panic(err)
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < 48; i++ {
		go func() {
			runtime.LockOSThread()
			syscall.Write(p[1], buf)
		}()
	}
	time.Sleep(3 * time.Second)
	fmt.Println("blocked")
	time.Sleep(time.Hour)
}
