package confine

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Denied lists the calls the filter kills the process for, with why a
// tender never makes them.
var Denied = map[uint32]string{
	unix.SYS_EXECVE: "running programs", unix.SYS_EXECVEAT: "running programs",
	unix.SYS_PTRACE: "other processes", unix.SYS_PROCESS_VM_READV: "other processes",
	unix.SYS_PROCESS_VM_WRITEV: "other processes", unix.SYS_KCMP: "other processes",
	unix.SYS_PIDFD_GETFD: "other processes' descriptors",
	unix.SYS_MOUNT:       "mounts", unix.SYS_UMOUNT2: "mounts", unix.SYS_PIVOT_ROOT: "mounts",
	unix.SYS_CHROOT: "mounts", unix.SYS_FSOPEN: "mounts", unix.SYS_FSCONFIG: "mounts",
	unix.SYS_FSMOUNT: "mounts", unix.SYS_FSPICK: "mounts", unix.SYS_MOVE_MOUNT: "mounts",
	unix.SYS_OPEN_TREE: "mounts", unix.SYS_MOUNT_SETATTR: "mounts",
	unix.SYS_UNSHARE: "namespaces", unix.SYS_SETNS: "namespaces",
	unix.SYS_INIT_MODULE: "kernel modules", unix.SYS_FINIT_MODULE: "kernel modules",
	unix.SYS_DELETE_MODULE: "kernel modules", unix.SYS_KEXEC_LOAD: "another kernel",
	unix.SYS_KEXEC_FILE_LOAD: "another kernel", unix.SYS_REBOOT: "the host's power",
	unix.SYS_BPF: "kernel programs", unix.SYS_PERF_EVENT_OPEN: "kernel tracing",
	unix.SYS_KEYCTL: "kernel keys", unix.SYS_ADD_KEY: "kernel keys", unix.SYS_REQUEST_KEY: "kernel keys",
	unix.SYS_IO_URING_SETUP: "io_uring, whose operations seccomp cannot see",
	unix.SYS_IO_URING_ENTER: "io_uring", unix.SYS_IO_URING_REGISTER: "io_uring",
	unix.SYS_USERFAULTFD:       "page-fault handling, a kernel exploit's favourite",
	unix.SYS_OPEN_BY_HANDLE_AT: "files by handle, past every path check",
	unix.SYS_NAME_TO_HANDLE_AT: "files by handle",
	unix.SYS_IOPL:              "port I/O", unix.SYS_IOPERM: "port I/O",
	unix.SYS_SWAPON: "swap", unix.SYS_SWAPOFF: "swap", unix.SYS_ACCT: "accounting",
	unix.SYS_QUOTACTL: "quotas", unix.SYS_SYSLOG: "the kernel log",
	unix.SYS_SETTIMEOFDAY: "the host's clock", unix.SYS_CLOCK_SETTIME: "the host's clock",
	unix.SYS_CLOCK_ADJTIME: "the host's clock", unix.SYS_ADJTIMEX: "the host's clock",
	unix.SYS_SETHOSTNAME: "the host's name", unix.SYS_SETDOMAINNAME: "the host's name",
	unix.SYS_PERSONALITY: "the process's personality",
	unix.SYS_SETUID:      "identity", unix.SYS_SETGID: "identity", unix.SYS_SETREUID: "identity",
	unix.SYS_SETREGID: "identity", unix.SYS_SETRESUID: "identity", unix.SYS_SETRESGID: "identity",
	unix.SYS_SETFSUID: "identity", unix.SYS_SETFSGID: "identity", unix.SYS_SETGROUPS: "identity",
	unix.SYS_CAPSET: "capabilities", unix.SYS_FANOTIFY_INIT: "watching the host's files",
	unix.SYS_VHANGUP: "terminals",
}

// cloneNamespaces are clone's flags that make namespaces.
const cloneNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME

const auditArchX8664 = 0xc000003e

// Filter assembles the filter: the architecture, no x32 calls, clone
// without namespace flags, clone3 (whose flags are in memory the filter
// cannot read) ENOSYS, as a kernel without it (the Go runtime and C
// libraries then use clone), and the denied calls.
func Filter() ([]unix.SockFilter, error) {
	kill := bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS}
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	nrs := make([]uint32, 0, len(Denied))
	for nr := range Denied {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX8664, SkipTrue: 1},
		kill,
		bpf.LoadAbsolute{Off: 0, Size: 4}, // nr
		// The calls of every exit first (KVM_RUN, the futexes that wake
		// vCPU threads): a few instructions, not the whole list.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_IOCTL, SkipFalse: 1},
		allow,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_FUTEX, SkipFalse: 1},
		allow,
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
		kill,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_CLONE3, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_CLONE, SkipFalse: 4},
		bpf.LoadAbsolute{Off: 16, Size: 4}, // clone's flags, low 32 bits
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: cloneNamespaces, SkipTrue: 1},
		allow,
		kill,
	}
	// Each denied number: equal → kill, the last comparison falling
	// through to allow.
	for i, nr := range nrs {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(len(nrs) - i)})
	}
	prog = append(prog, allow, kill)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("confine: assembling the filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// Tender sets no_new_privs and installs the filter on every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC, which gives them no_new_privs too).
// It cannot be undone: call it once the tender has set up what it needs.
// Later calls (a background instance's restarts) do nothing: filters
// stack, and the kernel bounds a process's to 32768 instructions in all.
func Tender() error {
	once.Do(func() { onceErr = tender() })
	return onceErr
}

var (
	once    sync.Once
	onceErr error
)

func tender() error {
	filter, err := Filter()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("confine: no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("confine: installing the seccomp filter: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("confine: thread %d could not take the seccomp filter", r)
	}
	return nil
}
