// Command vectors keeps distinctive values in every vector register the
// CPU offers (the 16 XMM registers; the 16 YMM registers with AVX; the 32
// ZMM registers and the opmask registers with AVX-512) while signals
// interrupt it (SIGURG sent to its thread, and the runtime's own
// preemption requests), and checks that every value survived. Signal
// delivery must save the whole extended state and rt_sigreturn restore
// it. It prints what it checked, so a run on a CPU without AVX says so.
//
// SIGUSR1 and SIGUSR2 get a handler of its own (clobber, in assembly)
// that overwrites every vector register and edits XMM14/YMM14 in the
// frame: the interrupted code must see the frame's values, edits
// included, whether the handler returns through a plain rt_sigreturn
// (SIGUSR1) or through the runtime's own restorer (SIGUSR2).
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Implemented in vectors_amd64.s: each loads its registers from in, spins
// for spins iterations with no preemption point, and stores them to out.
func holdXMM(in, out *[16][16]byte, spins int)
func holdYMM(in, out *[16][32]byte, spins int)
func holdZMM(in, out *[32][64]byte, kin, kout *[8]uint64, spins int)

// Shared with clobber in vectors_amd64.s.
var (
	holding   uint32 // 1 while a hold loop has its registers loaded
	edited    uint32 // set by clobber when it edited a held frame
	delivered uint64 // signals clobber handled
	marker    [32]byte
	hasAVX    bool
	hasAVX512 bool
)

func addrs() (handler, rawRestorer, runtimeRestorer uintptr)

const (
	rounds = 200
	spins  = 100_000
)

// minSignals is how many signals must have been sent while the registers
// were held for the run to prove anything.
const minSignals = 100

func main() {
	// The sender must run while this thread holds its registers in a
	// loop the scheduler cannot preempt.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	runtime.LockOSThread() // the registers are held on this thread
	tid := syscall.Gettid()
	hasAVX, hasAVX512 = cpu.X86.HasAVX, cpu.X86.HasAVX512F
	pattern(marker[:], 0xfeed)
	handler, raw, viaRuntime := addrs()
	install(syscall.SIGUSR1, handler, raw)
	install(syscall.SIGUSR2, handler, viaRuntime)
	signals := []syscall.Signal{syscall.SIGURG, syscall.SIGUSR1, syscall.SIGUSR2}
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan bool)
	go func() {
		defer close(done)
		for !stop.Load() {
			sig := signals[sent.Load()%int64(len(signals))]
			if err := syscall.Tgkill(syscall.Getpid(), tid, sig); err != nil {
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
	fmt.Printf("%d signals sent, %d taken by the clobbering handler, %d holds edited by it\n",
		sent.Load(), atomic.LoadUint64(&delivered), edits)
	if edits == 0 {
		fmt.Fprintln(os.Stderr, "the handler never edited a held frame: the check proved nothing")
		os.Exit(1)
	}
}

// edits counts the holds whose frame clobber edited.
var edits int

// install makes clobber the handler of sig, returning through restorer,
// on the thread's alternate signal stack.
func install(sig syscall.Signal, handler, restorer uintptr) {
	const (
		saSiginfo  = 0x4
		saOnstack  = 0x08000000
		saRestart  = 0x10000000
		saRestorer = 0x04000000
	)
	act := struct {
		handler, flags, restorer, mask uint64
	}{uint64(handler), saSiginfo | saOnstack | saRestart | saRestorer, uint64(restorer), 0}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "rt_sigaction:", e)
		os.Exit(2)
	}
}

// expect returns what register reg of size bytes should hold after a
// hold that started with in: in, unless clobber edited the frame, which
// sets register 14's low 16 bytes (and the next 16 with AVX) to marker.
func expect(reg int, in []byte) []byte {
	want := append([]byte(nil), in...)
	if reg == 14 && atomic.LoadUint32(&edited) != 0 {
		n := 16
		if hasAVX && len(want) >= 32 {
			n = 32
		}
		copy(want, marker[:n])
	}
	return want
}

// startHold resets the edit flag before a hold.
func startHold() { atomic.StoreUint32(&edited, 0) }

// endHold counts an edited hold.
func endHold() {
	if atomic.LoadUint32(&edited) != 0 {
		edits++
	}
}

func checkXMM() int {
	bad := 0
	for r := 0; r < rounds; r++ {
		var in, out [16][16]byte
		for i := range in {
			pattern(in[i][:], uint64(r*100+i))
		}
		startHold()
		holdXMM(&in, &out, spins)
		endHold()
		for i := range in {
			if want := expect(i, in[i][:]); !bytes.Equal(want, out[i][:]) {
				bad++
				fmt.Printf("round %d: X%d = %x, want %x\n", r, i, out[i], expect(i, in[i][:]))
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
		startHold()
		holdYMM(&in, &out, spins)
		endHold()
		for i := range in {
			if want := expect(i, in[i][:]); !bytes.Equal(want, out[i][:]) {
				bad++
				fmt.Printf("round %d: Y%d = %x, want %x\n", r, i, out[i], expect(i, in[i][:]))
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
		startHold()
		holdZMM(&in, &out, &kin, &kout, spins)
		endHold()
		for i := range in {
			if want := expect(i, in[i][:]); !bytes.Equal(want, out[i][:]) {
				bad++
				fmt.Printf("round %d: Z%d = %x, want %x\n", r, i, out[i], expect(i, in[i][:]))
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
