// Command escape tries, with raw system calls, one thing the Mote ABI
// does not allow, named by its argument: open, socket, execve, ptrace,
// execveat, mmapfd (map descriptor 0), fork, raisecore (set the core
// file limit), and with a NIC on spt mmapringexec (map the NIC's ring file
// executable) or mmapnotify (map its notification eventfd). A confined
// guest must be stopped at the attempt. With "fds" it only lists the
// descriptors above 2 it has, and ends; with "stdio" it says what its
// output descriptors are; with "pid" it prints its pid and waits a minute.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	path := []byte("/bin/sh\x00")
	p := uintptr(unsafe.Pointer(&path[0]))
	var r1 uintptr
	var e syscall.Errno
	if os.Args[1] == "stdio" {
		// What the guest's output descriptors are: a terminal mote was
		// given must not reach it (the guest could read keystrokes
		// through it, or leave it non-blocking for the shell).
		for fd := 1; fd <= 2; fd++ {
			fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
			var st syscall.Stat_t
			syscall.Fstat(fd, &st)
			fmt.Printf("fd %d: readable %v, pipe %v (%v)\n", fd, e == 0 && fl&syscall.O_ACCMODE != syscall.O_WRONLY,
				st.Mode&syscall.S_IFMT == syscall.S_IFIFO, e)
		}
		return
	}
	if os.Args[1] == "exec" {
		// A subprocess, as os/exec starts it: a unikernel has none to
		// start, and the program must get a plain error.
		err := exec.Command("/bin/true").Run()
		fmt.Println("exec:", err)
		return
	}
	if os.Args[1] == "pid" {
		// Its pid, then a wait, for a test that looks at it from outside.
		fmt.Println("pid", os.Getpid())
		time.Sleep(time.Minute)
		return
	}
	if os.Args[1] == "fds" {
		for fd := 3; fd < 256; fd++ {
			if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e == 0 {
				fmt.Println("open descriptor", fd)
			}
		}
		return
	}
	fmt.Println("trying", os.Args[1])
	switch os.Args[1] {
	case "open":
		r1, _, e = syscall.RawSyscall(syscall.SYS_OPEN, p, syscall.O_RDONLY, 0)
	case "socket":
		r1, _, e = syscall.RawSyscall(syscall.SYS_SOCKET, syscall.AF_INET, syscall.SOCK_STREAM, 0)
	case "execve":
		argv := []uintptr{p, 0}
		r1, _, e = syscall.RawSyscall(syscall.SYS_EXECVE, p, uintptr(unsafe.Pointer(&argv[0])), 0)
	case "ptrace":
		r1, _, e = syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
	case "execveat":
		argv := []uintptr{p, 0}
		r1, _, e = syscall.RawSyscall6(322, 0, p, uintptr(unsafe.Pointer(&argv[0])), 0, 0x1000, 0)
	case "mmapfd":
		r1, _, e = syscall.RawSyscall6(syscall.SYS_MMAP, 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED, 0, 0)
	case "mmapringexec":
		r1, _, e = syscall.RawSyscall6(syscall.SYS_MMAP, 0, 4096, syscall.PROT_READ|syscall.PROT_EXEC, syscall.MAP_SHARED, nic().RingFD, 0)
	case "mmapnotify":
		r1, _, e = syscall.RawSyscall6(syscall.SYS_MMAP, 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED, nic().FD, 0)
	case "raisecore":
		lim := syscall.Rlimit{Cur: 1 << 30, Max: 1 << 30}
		r1, _, e = syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, syscall.RLIMIT_CORE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	case "stop":
		// Stop the whole guest, as a hostile or broken one might; it
		// must not hold mote (which continues and then ends it).
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		time.Sleep(time.Hour)
	case "fork":
		r1, _, e = syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	}
	fmt.Println("still here:", r1, e)
}

// nic is the first NIC of the manifest.
func nic() (n struct {
	FD     uintptr `json:"fd"`
	RingFD uintptr `json:"ring_fd"`
}) {
	var m struct {
		Net []json.RawMessage `json:"net"`
	}
	if json.Unmarshal([]byte(os.Getenv("MOTE_MANIFEST")), &m) != nil || len(m.Net) == 0 {
		fmt.Println("no NIC in the manifest")
		os.Exit(3)
	}
	json.Unmarshal(m.Net[0], &n)
	return n
}
