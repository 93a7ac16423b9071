// Command sigstress puts signal delivery under every load at once, for a
// bounded number of rounds: threads that are made and end (goroutines
// locked to their threads exit with them), faults recovered as panics,
// signals sent to threads and to the process, the runtime's preemption
// (GC stops the world while goroutines spin), alternate-stack changes, and
// vector state checked across all of it. It must end with every check
// passed; a tender that loses or tears anything shows as a crash, a
// changed register or a hang (which the test's timeout catches).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const rounds = 40

type T struct{ x [8]int }

//go:noinline
func deref(p *T, i int) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = p.x[i&7]
	return true
}

// holdXMM is in sigstress_amd64.s: it loads X0-X14 from in, spins, and
// stores them to out.
func holdXMM(in, out *[15][16]byte, spins int)

type stackT struct {
	sp    uintptr
	flags int32
	_     int32
	size  uintptr
}

func main() {
	usr1 := make(chan os.Signal, 64)
	signal.Notify(usr1, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for range usr1 {
		}
	}()
	var failures atomic.Int64
	var tids sync.Map // live locked threads
	stop := make(chan struct{})

	// Signals at random threads and at the process.
	var senders sync.WaitGroup
	senders.Add(1)
	go func() {
		defer senders.Done()
		pid := syscall.Getpid()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tids.Range(func(k, _ any) bool {
				syscall.Tgkill(pid, k.(int), syscall.SIGURG)
				if i%4 == 0 {
					syscall.Tgkill(pid, k.(int), syscall.SIGUSR1)
				}
				return true
			})
			if i%16 == 0 {
				syscall.Kill(pid, syscall.SIGUSR2)
			}
			runtime.Gosched()
		}
	}()
	// Stop-the-world GCs preempt the spinners.
	senders.Add(1)
	go func() {
		defer senders.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()

	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				// Locked and never unlocked: the thread ends with the
				// goroutine, and the next round's clone makes another.
				runtime.LockOSThread()
				tid := syscall.Gettid()
				tids.Store(tid, true)
				defer tids.Delete(tid)
				switch w % 3 {
				case 0: // faults
					for i := 0; i < 200; i++ {
						if deref(nil, i) {
							failures.Add(1)
						}
					}
				case 1: // vector state
					var in, out [15][16]byte
					for i := range in {
						for j := range in[i] {
							in[i][j] = byte(r*31 + w*7 + i*16 + j + 1)
						}
					}
					holdXMM(&in, &out, 200_000)
					if in != out {
						fmt.Printf("round %d: XMM changed across signals\n", r)
						failures.Add(1)
					}
				case 2: // alternate stacks, changed and restored
					var old stackT
					syscall.RawSyscall(syscall.SYS_SIGALTSTACK, 0, uintptr(unsafe.Pointer(&old)), 0)
					buf := make([]byte, 64<<10)
					for i := 0; i < 200; i++ {
						ss := stackT{sp: uintptr(unsafe.Pointer(&buf[0])), size: uintptr(32<<10 + (i&1)*32<<10)}
						if _, _, e := syscall.RawSyscall(syscall.SYS_SIGALTSTACK, uintptr(unsafe.Pointer(&ss)), 0, 0); e != 0 {
							fmt.Println("sigaltstack:", e)
							failures.Add(1)
						}
					}
					syscall.RawSyscall(syscall.SYS_SIGALTSTACK, uintptr(unsafe.Pointer(&old)), 0, 0)
					runtime.KeepAlive(buf)
				}
			}(w)
		}
		wg.Wait()
	}
	close(stop)
	senders.Wait()
	if n := failures.Load(); n > 0 {
		fmt.Printf("FAIL: %d checks failed\n", n)
		os.Exit(1)
	}
	fmt.Println("signal stress: every check passed")
}
