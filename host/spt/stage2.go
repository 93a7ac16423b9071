package spt

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stage2Arg is the hidden argument with which mote starts itself as stage
// 2 (see the package comment). Stage 2 reads its plan from descriptor 3.
const Stage2Arg = "__spt-stage2"

// Descriptors stage 2 is started with.
const (
	fdPlan   = 3
	fdSock   = 4
	fdImage  = 5
	fdDevice = 6 // and up: the devices, in manifest order
)

// plan is what mote tells stage 2.
type plan struct {
	Argv, Env []string
	Devices   int
	Blocks    []BlockFD // FD is the manifest's number
	Rings     []int     // the NICs' ring files, by the manifest's number
	FSize     uint64    // RLIMIT_FSIZE: the largest writable block device, or 0
	Data      uint64    // RLIMIT_DATA: the guest's writable private memory, or 0
}

// Stage2 confines this process and replaces it with the image. It returns
// only by exiting.
func Stage2() {
	runtime.LockOSThread()
	if err := stage2(); err != nil {
		fmt.Fprintf(os.Stderr, "mote: spt: %v\n", err)
		os.Exit(125)
	}
}

func stage2() error {
	var p plan
	if err := json.NewDecoder(os.NewFile(fdPlan, "plan")).Decode(&p); err != nil {
		return fmt.Errorf("reading the plan: %w", err)
	}
	unix.Close(fdPlan)
	// Park the socket and the image above the devices' final numbers,
	// close-on-exec, then move the devices down to 3, 4, …
	high := 3 + p.Devices + 8
	sock, err := unix.FcntlInt(fdSock, unix.F_DUPFD_CLOEXEC, high)
	if err != nil {
		return err
	}
	img, err := unix.FcntlInt(fdImage, unix.F_DUPFD_CLOEXEC, high)
	if err != nil {
		return err
	}
	unix.Close(fdSock)
	unix.Close(fdImage)
	for i := 0; i < p.Devices; i++ {
		if err := unix.Dup2(fdDevice+i, 3+i); err != nil {
			return err
		}
	}
	for fd := 3 + p.Devices; fd < fdDevice+p.Devices; fd++ {
		if fd != sock && fd != img {
			unix.Close(fd)
		}
	}
	// Descriptors mote inherited without close-on-exec (one the user's
	// shell left open, say) must not reach the guest: everything above
	// the devices is closed by the exec of the image.
	if err := unix.CloseRange(uint(3+p.Devices), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		for fd := 3 + p.Devices; fd < 1<<16; fd++ { // kernels before 5.11
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	// No core files: a crash of the guest's must not write bytes of its
	// choosing into mote's working directory. The hard limit is 0, and the
	// filter lets the guest set no limit but RLIMIT_NOFILE.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("RLIMIT_CORE: %w", err)
	}
	if p.FSize > 0 {
		lim := unix.Rlimit{Cur: p.FSize, Max: p.FSize}
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
			return fmt.Errorf("RLIMIT_FSIZE: %w", err)
		}
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	filter, err := Build(Policy{Pid: os.Getpid(), Blocks: p.Blocks, Rings: p.Rings, ImageFD: img, NotifySock: sock})
	if err != nil {
		return err
	}
	argv, err := cstrings(p.Argv)
	if err != nil {
		return err
	}
	envv, err := cstrings(p.Env)
	if err != nil {
		return err
	}
	empty, _ := unix.BytePtrFromString("")

	// The guest's memory: RLIMIT_DATA bounds its private writable
	// mappings (heap, .data, .bss), which is what it can make the host
	// hold. The filter lets it set no limit but RLIMIT_NOFILE. Set last,
	// when stage 2 allocates nothing more: stage 2 is mote, whose own
	// mappings (~145 MB of VmData in mote's supervisor) pass a small
	// guest's limit, so any heap growth after it would end stage 2 with
	// "out of memory" before the guest ran: the likely cause of a CI
	// failure seen once (TestSPTMemoryBounded: an out-of-memory death in
	// 0.08 s with no line from the guest).
	if p.Data > 0 {
		lim := unix.Rlimit{Cur: p.Data, Max: p.Data}
		if err := unix.Setrlimit(unix.RLIMIT_DATA, &lim); err != nil {
			return fmt.Errorf("RLIMIT_DATA: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// From here on this thread is confined: only the filter's calls.
	lfd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", e)
	}
	if err := unix.Sendmsg(sock, []byte{1}, unix.UnixRights(int(lfd)), nil, 0); err != nil {
		return fmt.Errorf("handing over the listener: %w", err)
	}
	unix.Close(int(lfd))
	_, _, e = unix.RawSyscall6(unix.SYS_EXECVEAT, uintptr(img), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat of the image: %w", e)
}

// dropCapabilities leaves the guest none, even when mote runs as root:
// the filter keeps a guest from most of what they allow, and without them
// a call the filter lets through can do no more than an unprivileged
// user's. An empty bounding and inheritable set make the exec of the
// image give root none back; capget then answers truly that the guest
// has none (abi.Capget). Without CAP_SETPCAP (mote not run by root) the
// bounding set cannot be changed, and there is nothing to drop.
func dropCapabilities() error {
	for c := 0; c <= 63; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			break // past the kernel's last capability
		}
		if err != nil && err != unix.EPERM {
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return fmt.Errorf("dropping capabilities: %w", err)
	}
	return nil
}

// cstrings makes a NULL-terminated array of C strings.
func cstrings(ss []string) ([]*byte, error) {
	out := make([]*byte, 0, len(ss)+1)
	for _, s := range ss {
		b, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return append(out, nil), nil
}
