// Command abifuzz makes random system calls with random and extreme
// arguments, to find what a hostile guest could do to the tender (hvt) or
// mote's supervisor (spt): the guest may fail its calls, the host side
// must not crash, hang or grow without bound.
//
// Calls go half through package syscall (whose sites the hvt tender
// rewrites to the doorbell) and half through a SYSCALL of the program's
// own. What would end or wedge the guest itself rather than test the host
// is not made: exits, sigreturn, clone, signals to itself, handlers and
// signal stacks, FS changes, waits without a timeout, reads of descriptors
// that may block, memory calls over the Go heap. Usage: abifuzz SEED CALLS.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

func rawSyscall(nr, a0, a1, a2, a3, a4, a5 uintptr) uintptr

const arenaSize = 1 << 20

func main() {
	seed, _ := strconv.ParseUint(os.Args[1], 10, 64)
	calls, _ := strconv.Atoi(os.Args[2])
	r := rand.New(rand.NewPCG(seed, 0x6d6f7465))
	arena, err := syscall.Mmap(-1, 0, arenaSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		panic(err)
	}
	base := uintptr(unsafe.Pointer(&arena[0]))
	// A timeout every waiting call gets: a millisecond.
	ts := &syscall.Timespec{Nsec: 1e6}
	tsp := uintptr(unsafe.Pointer(ts))
	fv := rawSyscall
	text := **(**uintptr)(unsafe.Pointer(&fv)) &^ 0xfff // a page of the program's code
	// Addresses where no memory of the guest's can be: below mmap_min_addr,
	// at the top of user space, the hvt tender's own pages (plain user
	// addresses on spt, where nothing is mapped), outside user space.
	bad := []uintptr{0, 1, 0xfff, 0x1000, 1 << 47, 1<<47 - 8, 0x7f8000000000,
		0x7f8000003000, 1 << 63, ^uintptr(0), ^uintptr(0) - 4095}
	ptr := func() uintptr {
		switch r.IntN(4) {
		case 0:
			return bad[r.IntN(len(bad))]
		case 1:
			return text
		default:
			return base + uintptr(r.IntN(arenaSize))
		}
	}
	num := func() uintptr {
		switch r.IntN(6) {
		case 0:
			return uintptr(r.Uint64())
		case 1:
			return bad[r.IntN(len(bad))]
		case 2:
			return uintptr(r.IntN(4096))
		case 3:
			return ^uintptr(0) // -1
		default:
			return uintptr(r.IntN(64))
		}
	}
	// memRange is an address and a length that stay inside the arena, or
	// an address no Go memory is at.
	memRange := func() (uintptr, uintptr) {
		if r.IntN(4) == 0 {
			addr := bad[r.IntN(len(bad))]
			if addr >= 1<<47 { // not user space: any length
				return addr, num()
			}
			// Low or high user addresses (the stack's on spt): short.
			return addr, []uintptr{0, 1, 4096}[r.IntN(3)]
		}
		off := uintptr(r.IntN(arenaSize/4096)) * 4096
		return base + off, uintptr(r.IntN(int(arenaSize-off) + 1))
	}
	// safeFD is a descriptor no call can have opened, so that no read or
	// write waits for ever.
	safeFD := func() uintptr { return []uintptr{^uintptr(0), 1 << 20, 1 << 31, 0x3ffffff0}[r.IntN(4)] }

	trace := os.Getenv("ABIFUZZ_TRACE") != "" // each call, before it is made
	var errs, oks int
	for i := 0; i < calls; i++ {
		nr := uintptr(r.IntN(460))
		if r.IntN(50) == 0 {
			nr = uintptr(r.Uint32() & 0x3fffffff) // not x32 calls: spt's filter kills those
		}
		a := [6]uintptr{num(), ptr(), num(), ptr(), num(), num()}
		switch nr {
		case 60, 231, 15, 56, 57, 58, 435, // exit, exit_group, rt_sigreturn, clone, fork, vfork, clone3
			62, 200, 234, 129, 297, // kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo
			14, 131, 158, 218, 273, // rt_sigprocmask, sigaltstack, arch_prctl (FS), set_tid_address, set_robust_list
			101, 157, 317, // ptrace, prctl, seccomp: refused anyway, but never natively
			25, 216, 163, 164, 165, 166, 169, // mremap, remap_file_pages, acct, settimeofday, mount, umount2, reboot
			334,      // rseq: the kernel kills a process whose rseq area is bad
			335, 336, // uretprobe, uprobe: Linux lets them past seccomp, and they kill a caller outside its trampoline
			37, 38, 222, 223: // alarm, setitimer, timer_create, timer_settime: a SIGALRM would end the run
			continue
		case 13: // rt_sigaction: queries only
			a[1] = 0
		case 9: // mmap: never over the heap
			a[0], a[1] = memRange()
			if a[3]&syscall.MAP_FIXED == 0 {
				a[0] = 0
			}
		case 10, 28, 26, 27, 149, 150: // mprotect, madvise, msync, mincore, mlock, munlock
			a[0], a[1] = memRange()
		case 11: // munmap: never the arena, whose freed pages the Go heap could then be given
			a[0] = bad[r.IntN(len(bad))]
			if a[0] < 1<<47 {
				a[1] = []uintptr{0, 1, 4096}[r.IntN(3)]
			}
		case 0, 17, 19, 295, 45, 47, 299: // read, pread64, readv, preadv, recvfrom, recvmsg, recvmmsg
			a[0] = safeFD()
		case 1, 18, 20, 296, 44, 46, 307: // writes: never the console
			a[0] = safeFD()
		case 202: // futex: always with a timeout
			a[3] = tsp
		case 35, 230: // nanosleep, clock_nanosleep
			a[0], a[2] = tsp, tsp
			a[1] = 0
		case 7, 271, 23, 270, 232, 281, 441: // poll, ppoll, select, pselect6, epoll_wait, epoll_pwait(2)
			a[2], a[4] = 1, tsp
			a[3] = 0
			if nr == 271 || nr == 270 || nr == 441 {
				a[2] = tsp
			}
		case 34, 130, 61, 247: // pause, rt_sigsuspend, wait4, waitid
			continue
		case 43, 288: // accept, accept4
			a[0] = safeFD()
		case 3, 436: // close, close_range: not the standard descriptors
			if a[0] <= 2 {
				a[0] += 3
			}
		case 33, 292: // dup2, dup3: nothing over the standard descriptors
			if a[1] <= 2 {
				a[1] = 5
			}
		}
		if trace {
			fmt.Fprintf(os.Stderr, "abifuzz: %d: %d(%#x, %#x, %#x, %#x, %#x, %#x)\n", i, nr, a[0], a[1], a[2], a[3], a[4], a[5])
		}
		var ret uintptr
		if i%2 == 0 {
			r1, _, e := syscall.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
			ret = r1
			if e != 0 {
				ret = uintptr(-int(e))
			}
		} else {
			ret = rawSyscall(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		}
		if int(ret) < 0 && int(ret) > -4096 {
			errs++
		} else {
			oks++
		}
		if i%200 == 199 {
			// Descriptors the calls made (pipes, eventfds, epolls, files):
			// closed, so that none is left to block a later call.
			for fd := 3; fd < 1024; fd++ {
				syscall.Close(fd)
			}
		}
	}
	fmt.Printf("abifuzz: seed %d: %d calls made, %d failed, %d succeeded\n", seed, errs+oks, errs, oks)
}
