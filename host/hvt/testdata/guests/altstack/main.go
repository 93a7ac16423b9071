// Command altstack switches its thread's alternate signal stack between a
// 32 KiB and a 64 KiB one, as fast as it can, while another thread sends it
// signals: every signal's frame must lie wholly on one of the two stacks,
// never on a mix of the old stack's address and the new one's size.
//
// With an argument, the address of the hvt shim's sigaltstack entry, it
// calls that entry as the Go runtime's rewritten sites do; without, it
// makes the system call.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

type stackT struct {
	sp    uintptr
	flags int32
	_     int32
	size  uintptr
}

// setAltStack is sigaltstack(ss, nil) through fn (a shim entry) or, with
// fn 0, the system call; it returns the raw result. In altstack_amd64.s.
func setAltStack(fn uintptr, ss *stackT) int64

// minSignals is how many signals the thread takes while it switches.
const minSignals = 2000

func main() {
	var fn uintptr
	if len(os.Args) > 1 {
		v, err := strconv.ParseUint(os.Args[1], 0, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fn = uintptr(v)
	}
	// SIGUSR1 has a handler (the runtime's, for Notify) that runs on the
	// alternate stack.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	go func() {
		for range c {
		}
	}()

	runtime.LockOSThread()
	tid := syscall.Gettid()
	small := make([]byte, 32<<10)
	large := make([]byte, 64<<10)
	stacks := []stackT{
		{sp: uintptr(unsafe.Pointer(&small[0])), size: uintptr(len(small))},
		{sp: uintptr(unsafe.Pointer(&large[0])), size: uintptr(len(large))},
	}
	var old stackT
	if _, _, e := syscall.RawSyscall(syscall.SYS_SIGALTSTACK, 0, uintptr(unsafe.Pointer(&old)), 0); e != 0 {
		fmt.Fprintln(os.Stderr, "sigaltstack:", e)
		os.Exit(1)
	}

	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan bool)
	go func() {
		defer close(done)
		for !stop.Load() {
			syscall.Tgkill(syscall.Getpid(), tid, syscall.SIGUSR1)
			sent.Add(1)
			time.Sleep(20 * time.Microsecond)
		}
	}()
	// Bounded by the signals that arrive, not by time: under emulation
	// a guest's second can be minutes of the host's.
	for sent.Load() < minSignals {
		for i := 0; i < 1000; i++ {
			if r := setAltStack(fn, &stacks[i&1]); r != 0 {
				fmt.Fprintln(os.Stderr, "sigaltstack:", r)
				os.Exit(1)
			}
		}
	}
	// The runtime's own signal stack back before the runtime needs it.
	setAltStack(fn, &old)
	stop.Store(true)
	<-done
	runtime.KeepAlive(small)
	runtime.KeepAlive(large)
	fmt.Println("alternate stack switched under signals: ok")
}
