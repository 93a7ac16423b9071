// Command vectors keeps distinctive values in every vector register the
// CPU offers (the 16 XMM registers; the 16 YMM registers with AVX; the 32
// ZMM registers and the opmask registers with AVX-512) while signals
// interrupt it (SIGURG sent to its thread, and the runtime's own
// preemption requests), and checks that every value survived. Signal
// delivery must save the whole extended state and rt_sigreturn restore
// it. It prints what it checked, so a run on a CPU without AVX says so.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/cpu"
)

// Implemented in vectors_amd64.s: each loads its registers from in, spins
// for spins iterations with no preemption point, and stores them to out.
func holdXMM(in, out *[16][16]byte, spins int)
func holdYMM(in, out *[16][32]byte, spins int)
func holdZMM(in, out *[32][64]byte, kin, kout *[8]uint64, spins int)

const (
	rounds = 200
	spins  = 100_000
)

// minSignals is how many signals must have been sent while the registers
// were held for the run to prove anything.
const minSignals = 100

func main() {
	runtime.LockOSThread() // the registers are held on this thread
	tid := syscall.Gettid()
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan bool)
	go func() {
		defer close(done)
		for !stop.Load() {
			if err := syscall.Tgkill(syscall.Getpid(), tid, syscall.SIGURG); err != nil {
				fmt.Fprintln(os.Stderr, "tgkill:", err)
				os.Exit(2)
			}
			sent.Add(1)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	// Each GC stops the world, which preempts this thread with signals
	// of the runtime's own.
	go func() {
		for !stop.Load() {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
	fmt.Println("checking XMM0-15 (SSE)")
	bad := checkXMM()
	if cpu.X86.HasAVX {
		fmt.Println("checking YMM0-15 (AVX)")
		bad += checkYMM()
	} else {
		fmt.Println("no AVX on this CPU: YMM not checked")
	}
	if cpu.X86.HasAVX512F {
		fmt.Println("checking ZMM0-31 and K1-7 (AVX-512)")
		bad += checkZMM()
	} else {
		fmt.Println("no AVX-512 on this CPU: ZMM and opmasks not checked")
	}
	stop.Store(true)
	<-done
	if bad > 0 {
		fmt.Printf("FAIL: %d registers changed across signals\n", bad)
		os.Exit(1)
	}
	fmt.Println("all vector registers intact")
	if n := sent.Load(); n < minSignals {
		fmt.Fprintf(os.Stderr, "only %d signals sent: the check proved nothing\n", n)
		os.Exit(1)
	}
}

func checkXMM() int {
	bad := 0
	for r := 0; r < rounds; r++ {
		var in, out [16][16]byte
		for i := range in {
			pattern(in[i][:], uint64(r*100+i))
		}
		holdXMM(&in, &out, spins)
		for i := range in {
			if in[i] != out[i] {
				bad++
				fmt.Printf("round %d: X%d = %x, want %x\n", r, i, out[i], in[i])
			}
		}
		if bad > 8 {
			break
		}
	}
	return bad
}

func pattern(b []byte, seed uint64) {
	for i := 0; i < len(b); i += 8 {
		seed = seed*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(b[i:], seed|1) // never zero
	}
}

func checkYMM() int {
	bad := 0
	for r := 0; r < rounds; r++ {
		var in, out [16][32]byte
		for i := range in {
			pattern(in[i][:], uint64(r*100+i))
		}
		holdYMM(&in, &out, spins)
		for i := range in {
			if in[i] != out[i] {
				bad++
				fmt.Printf("round %d: Y%d = %x, want %x\n", r, i, out[i], in[i])
			}
		}
		if bad > 8 {
			break
		}
	}
	return bad
}

func checkZMM() int {
	bad := 0
	for r := 0; r < rounds; r++ {
		var in, out [32][64]byte
		var kin, kout [8]uint64
		for i := range in {
			pattern(in[i][:], uint64(r*100+i))
		}
		for i := 1; i < 8; i++ {
			kin[i] = uint64(r)<<8 | uint64(i) | 0x5500
		}
		holdZMM(&in, &out, &kin, &kout, spins)
		for i := range in {
			if in[i] != out[i] {
				bad++
				fmt.Printf("round %d: Z%d = %x, want %x\n", r, i, out[i], in[i])
			}
		}
		for i := 1; i < 8; i++ {
			if kin[i] != kout[i] {
				bad++
				fmt.Printf("round %d: K%d = %#x, want %#x\n", r, i, kout[i], kin[i])
			}
		}
		if bad > 8 {
			break
		}
	}
	return bad
}
