// Command abiconform makes system calls whose answers a program can see
// and prints each answer in a form that does not depend on the machine:
// the test runs it natively and on every confining target and wants the
// same lines, so an answer that differs from Linux's is a failing test.
// Each line is "call case: answer", the answer a result or an errno name.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/pprof/profile"
	"golang.org/x/sys/unix"
)

func main() {
	identity()
	seek()
	memory()
	clocks()
	vdsoClocks()
	prctl()
	capget()
	rusage()
	cpuProfile()
}

func say(call string, format string, args ...any) {
	fmt.Printf("%s: %s\n", call, fmt.Sprintf(format, args...))
}

// answer prints a raw call's outcome: "ok" or the errno's name.
func answer(call string, errno syscall.Errno) {
	if errno == 0 {
		say(call, "ok")
		return
	}
	say(call, "%s", unix.ErrnoName(errno))
}

func identity() {
	ppid, _, e := syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	say("getppid", "errno %d, not negative %v", e, int64(ppid) >= 0)
}

func seek() {
	r, w, err := os.Pipe()
	if err != nil {
		say("pipe2", "%v", err)
		return
	}
	_, _, e := syscall.RawSyscall(unix.SYS_LSEEK, r.Fd(), 0, 1)
	answer("lseek pipe", e)
	_, _, e = syscall.RawSyscall(unix.SYS_LSEEK, w.Fd(), 0, 1)
	answer("lseek pipe write end", e)
	r.Close()
	w.Close()
	_, _, e = syscall.RawSyscall(unix.SYS_LSEEK, 9999, 0, 1)
	answer("lseek bad descriptor", e)
}

// mmap maps anonymous memory; its errno is the answer.
func mmap(length int, prot, flags int) ([]byte, syscall.Errno) {
	b, err := unix.Mmap(-1, 0, length, prot, flags)
	if err != nil {
		return nil, err.(syscall.Errno)
	}
	return b, 0
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func memory() {
	const page = 4096
	anon := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	_, e := mmap(1<<50, unix.PROT_READ|unix.PROT_WRITE, anon)
	answer("mmap past the address space", e)
	_, e = mmap(0, unix.PROT_READ, anon)
	answer("mmap of length 0", e)
	_, e = mmap(page, unix.PROT_READ, unix.MAP_ANONYMOUS)
	answer("mmap neither private nor shared", e)

	// Shared anonymous memory within one process is ordinary memory.
	b, e := mmap(2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	answer("mmap shared anonymous", e)
	if e == 0 {
		b[0], b[page] = 7, 9
		say("shared anonymous memory", "reads back %v", b[0] == 7 && b[page] == 9)
		_, _, e = syscall.RawSyscall(unix.SYS_MUNMAP, addr(b), 2*page, 0)
		answer("munmap shared anonymous", e)
	}

	// mincore: a touched page is resident; an unaligned address and a
	// range with a hole are refused as Linux refuses them.
	b, e = mmap(2*page, unix.PROT_READ|unix.PROT_WRITE, anon)
	if e != 0 {
		answer("mmap", e)
		return
	}
	b[0] = 1
	var vec [2]byte
	_, _, e = syscall.RawSyscall(unix.SYS_MINCORE, addr(b), 2*page, uintptr(unsafe.Pointer(&vec[0])))
	answer("mincore", e)
	say("mincore touched page", "resident %v", vec[0]&1 == 1)
	_, _, e = syscall.RawSyscall(unix.SYS_MINCORE, addr(b)+1, page, uintptr(unsafe.Pointer(&vec[0])))
	answer("mincore unaligned", e)
	_, _, e = syscall.RawSyscall(unix.SYS_MINCORE, addr(b), page, 8)
	answer("mincore bad vector", e)
	syscall.RawSyscall(unix.SYS_MUNMAP, addr(b[page:]), page, 0)
	_, _, e = syscall.RawSyscall(unix.SYS_MINCORE, addr(b), 2*page, uintptr(unsafe.Pointer(&vec[0])))
	answer("mincore over a hole", e)
	syscall.RawSyscall(unix.SYS_MUNMAP, addr(b), page, 0)
}

func near(t time.Time) bool {
	d := time.Since(t)
	return d > -2*time.Second && d < 2*time.Second
}

func clocks() {
	var tv unix.Timeval
	_, _, e := syscall.RawSyscall(unix.SYS_GETTIMEOFDAY, uintptr(unsafe.Pointer(&tv)), 0, 0)
	answer("gettimeofday", e)
	say("gettimeofday", "now %v, microseconds in range %v", near(time.Unix(tv.Sec, tv.Usec*1000)), tv.Usec >= 0 && tv.Usec < 1e6)
	var tz [2]int32
	tz[0], tz[1] = 5, 5
	_, _, e = syscall.RawSyscall(unix.SYS_GETTIMEOFDAY, 0, uintptr(unsafe.Pointer(&tz[0])), 0)
	answer("gettimeofday time zone only", e)
	say("gettimeofday time zone", "%v", tz)
	var t int64
	sec, _, e := syscall.RawSyscall(unix.SYS_TIME, uintptr(unsafe.Pointer(&t)), 0, 0)
	answer("time", e)
	say("time", "now %v, stored %v", near(time.Unix(int64(sec), 0)), t == int64(sec) || t == int64(sec)+1)
	_, _, e = syscall.RawSyscall(unix.SYS_GETTIMEOFDAY, 8, 0, 0)
	answer("gettimeofday bad pointer", e)
}

func prctl() {
	name := []byte("conform\x00")
	_, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0, 0)
	answer("prctl PR_SET_NAME", e)
	var got [16]byte
	_, _, e = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_GET_NAME, uintptr(unsafe.Pointer(&got[0])), 0, 0, 0, 0)
	answer("prctl PR_GET_NAME", e)
	say("prctl PR_GET_NAME", "%q", got[:bytes.IndexByte(got[:], 0)])
	long := []byte("a-name-longer-than-fifteen-bytes\x00")
	syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&long[0])), 0, 0, 0, 0)
	syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_GET_NAME, uintptr(unsafe.Pointer(&got[0])), 0, 0, 0, 0)
	say("prctl PR_GET_NAME after a long name", "%q", got[:bytes.IndexByte(got[:], 0)])
	// The runtime names its memory; Linux answers 0, or EINVAL where the
	// kernel was built without CONFIG_ANON_VMA_NAME. Either is Linux.
	m, _ := mmap(4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	vma := []byte("conform\x00")
	_, _, e = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, addr(m), 4096, uintptr(unsafe.Pointer(&vma[0])), 0)
	say("prctl PR_SET_VMA", "linux's answer %v", e == 0 || e == unix.EINVAL)
	_, _, e = syscall.RawSyscall6(unix.SYS_PRCTL, 9999, 0, 0, 0, 0, 0)
	answer("prctl unknown option", e)
	_, _, e = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, 8, 0, 0, 0, 0)
	answer("prctl PR_SET_NAME bad pointer", e)
}

func capget() {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	_, _, e := syscall.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	answer("capget", e)
	hdr = unix.CapUserHeader{Version: 0x1234}
	_, _, e = syscall.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), 0, 0)
	answer("capget unknown version", e)
	say("capget unknown version", "header says %#x", hdr.Version)
	hdr = unix.CapUserHeader{Version: 0x1234}
	_, _, e = syscall.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	answer("capget unknown version with data", e)
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3, Pid: 1 << 30}
	_, _, e = syscall.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	answer("capget another process", e)
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	_, _, e = syscall.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), 0, 0)
	answer("capget no data", e)
}

func burn(d time.Duration) {
	sum := sha256.Sum256(nil)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			sum = sha256.Sum256(sum[:])
		}
	}
}

func rusage() {
	burn(50 * time.Millisecond)
	var ru unix.Rusage
	_, _, e := syscall.RawSyscall(unix.SYS_GETRUSAGE, unix.RUSAGE_SELF, uintptr(unsafe.Pointer(&ru)), 0)
	answer("getrusage self", e)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	say("getrusage self", "CPU time at least 10ms %v, max RSS set %v", cpu >= 10*time.Millisecond, ru.Maxrss > 0)
	_, _, e = syscall.RawSyscall(unix.SYS_GETRUSAGE, unix.RUSAGE_THREAD, uintptr(unsafe.Pointer(&ru)), 0)
	answer("getrusage thread", e)
	_, _, e = syscall.RawSyscall(unix.SYS_GETRUSAGE, 99, uintptr(unsafe.Pointer(&ru)), 0)
	answer("getrusage unknown", e)
	_, _, e = syscall.RawSyscall(unix.SYS_GETRUSAGE, unix.RUSAGE_SELF, 8, 0)
	answer("getrusage bad pointer", e)
}

// cpuProfile is what runtime/pprof and net/http/pprof do: SIGPROF by the
// thread's CPU time (timer_create), else the process's (setitimer).
func cpuProfile() {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		say("cpu profile", "%v", err)
		return
	}
	burn(500 * time.Millisecond)
	pprof.StopCPUProfile()
	p, err := profile.Parse(&buf)
	if err != nil {
		say("cpu profile", "%v", err)
		return
	}
	var n int64
	for _, s := range p.Sample {
		n += s.Value[0]
	}
	say("cpu profile", "has samples %v", n > 0)
	fmt.Fprintf(os.Stderr, "cpu profile: %d samples of %v\n", n, time.Duration(p.DurationNanos)) // for people, not compared
}
