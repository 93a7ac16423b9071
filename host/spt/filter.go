package spt

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// Policy is what the filter allows beyond the fixed list: the devices, by
// descriptor, and the descriptors stage 2 itself needs until its exec.
type Policy struct {
	Pid        int       // the guest's pid (kill and tgkill may aim only at it)
	Blocks     []BlockFD // pread64 and pwrite64, within bounds
	Rings      []int     // the NICs' ring files: mmap, never executable
	ImageFD    int       // execveat(ImageFD, "", …, AT_EMPTY_PATH) only
	NotifySock int       // sendmsg of the listener to mote, before the exec
}

// BlockFD is a block device's descriptor and geometry.
type BlockFD struct {
	FD       int
	Size     uint64
	Sector   uint64
	ReadOnly bool
}

const (
	auditArchX8664 = 0xc000003e
	offNr          = 0
	offArch        = 4
)

func argLo(i int) uint32 { return uint32(16 + 8*i) }
func argHi(i int) uint32 { return uint32(16 + 8*i + 4) }

// The answers a rule can give.
var (
	retAllow  = bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	retNotify = bpf.RetConstant{Val: unix.SECCOMP_RET_USER_NOTIF}
	retKill   = bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS}
	retEINVAL = bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EINVAL)}
)

// Allowed lists the system calls allowed whatever their arguments, with
// the reason for each. The calls with conditions are in Build.
var Allowed = map[uint32]string{
	unix.SYS_CLOSE:             "descriptors the guest made or was given",
	unix.SYS_MUNMAP:            "its own memory",
	unix.SYS_MADVISE:           "returning memory to the host",
	unix.SYS_RT_SIGACTION:      "the runtime's signal handlers",
	unix.SYS_RT_SIGPROCMASK:    "signal masks",
	unix.SYS_RT_SIGRETURN:      "returning from a handler",
	unix.SYS_SIGALTSTACK:       "signal stacks",
	unix.SYS_EXIT:              "ending a thread",
	unix.SYS_EXIT_GROUP:        "ending the guest",
	unix.SYS_GETTID:            "thread ids",
	unix.SYS_GETPID:            "the process id",
	unix.SYS_GETPPID:           "the parent's id (mote's)",
	unix.SYS_GETUID:            "the identity: the user who ran mote",
	unix.SYS_GETEUID:           "the identity: the user who ran mote",
	unix.SYS_GETGID:            "the identity: the user who ran mote",
	unix.SYS_GETEGID:           "the identity: the user who ran mote",
	unix.SYS_SCHED_YIELD:       "spinning locks",
	unix.SYS_SCHED_GETAFFINITY: "how many CPUs",
	unix.SYS_FUTEX:             "waiting and waking",
	unix.SYS_NANOSLEEP:         "sleeping",
	unix.SYS_GETRANDOM:         "entropy",
	unix.SYS_EPOLL_CREATE1:     "the netpoller",
	unix.SYS_EPOLL_CTL:         "the netpoller",
	unix.SYS_EPOLL_PWAIT:       "the netpoller and timers",
	unix.SYS_EVENTFD2:          "the netpoller's wake-ups",
	unix.SYS_PIPE2:             "os.Pipe",
	unix.SYS_FDATASYNC:         "durable block writes",
	unix.SYS_FSYNC:             "durable block writes",
	unix.SYS_FSTAT:             "its own descriptors (os.File.Stat: a logger asking what its stderr is)",
	unix.SYS_LSEEK:             "files of its tree, which the supervisor opened",
	unix.SYS_GETDENTS64:        "directories of its tree, which the supervisor opened",
	unix.SYS_FSTATFS:           "its own descriptors",
	unix.SYS_RESTART_SYSCALL:   "the kernel resuming a sleep a signal interrupted (nanosleep's restart block)",
	unix.SYS_GETGROUPS:         "the identity: the user who ran mote",
	unix.SYS_MINCORE:           "which of its own pages are resident",
	unix.SYS_GETTIMEOFDAY:      "the real-time clock",
	unix.SYS_TIME:              "the real-time clock",
	unix.SYS_GETRUSAGE:         "its own CPU time and memory (it has no children)",
	unix.SYS_SETITIMER:         "interval timers: the CPU profiler's process-wide SIGPROF",
	unix.SYS_TIMER_SETTIME:     "its own timers",
	unix.SYS_TIMER_GETTIME:     "its own timers",
	unix.SYS_TIMER_DELETE:      "its own timers",
}

// Build assembles the filter for a policy.
func Build(p Policy) ([]unix.SockFilter, error) {
	var prog []bpf.Instruction
	emit := func(in ...bpf.Instruction) { prog = append(prog, in...) }
	// Blocks are built separately and appended; each starts with a label.
	type block struct {
		nr   uint32
		body []bpf.Instruction
	}
	var blocks []block
	rule := func(nr uint32, body ...bpf.Instruction) { blocks = append(blocks, block{nr, body}) }

	// read and write: anything but a block device (those take pread64
	// and pwrite64, which are bounds-checked).
	rw := []bpf.Instruction{bpf.LoadAbsolute{Off: argLo(0), Size: 4}}
	for _, b := range p.Blocks {
		rw = append(rw, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(b.FD), SkipFalse: 1}, retNotify)
	}
	rw = append(rw, retAllow)
	rule(unix.SYS_READ, rw...)
	rule(unix.SYS_WRITE, rw...)

	// pread64 / pwrite64: on a block device, whole sectors inside it (the
	// count at most 1 MiB, offset + count at most the size, as 64 bits);
	// on any other descriptor (a file the supervisor opened from the
	// guest's tree), as the kernel allows. RLIMIT_FSIZE alone, the largest
	// device's size, let a write past a smaller device's end grow it.
	for _, write := range []bool{false, true} {
		var body []bpf.Instruction
		for _, b := range p.Blocks {
			if write && b.ReadOnly {
				continue
			}
			check := blockBounds(b)
			body = append(body, bpf.LoadAbsolute{Off: argLo(0), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(b.FD), SkipFalse: uint8(len(check))})
			body = append(body, check...)
		}
		body = append(body, retAllow)
		if write {
			rule(unix.SYS_PWRITE64, body...)
		} else {
			rule(unix.SYS_PREAD64, body...)
		}
	}

	// mmap and mprotect: never executable. mmap: anonymous; a NIC's ring
	// file by its descriptor number; a file of the tree privately (as on
	// hvt); never a block device (that would bypass its bounds) nor the
	// image. The kernel takes the descriptor's low 32 bits.
	n := len(p.Rings)
	never := []int{p.ImageFD}
	for _, b := range p.Blocks {
		never = append(never, b.FD)
	}
	k := len(never)
	if n+k > 200 {
		return nil, fmt.Errorf("spt: %d ring files and block devices: too many", n+k)
	}
	allowAt, notifyAt := 5+n+k+2, 5+n+k+3
	skip := func(from, to int) uint8 { return uint8(to - from - 1) }
	mmap := []bpf.Instruction{
		bpf.LoadAbsolute{Off: argLo(2), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.PROT_EXEC, SkipTrue: skip(1, notifyAt)},
		bpf.LoadAbsolute{Off: argLo(3), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.MAP_ANONYMOUS, SkipTrue: skip(3, allowAt)},
		bpf.LoadAbsolute{Off: argLo(4), Size: 4},
	}
	for _, fd := range p.Rings {
		mmap = append(mmap, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(fd), SkipTrue: skip(len(mmap), allowAt)})
	}
	for _, fd := range never {
		mmap = append(mmap, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(fd), SkipTrue: skip(len(mmap), notifyAt)})
	}
	mmap = append(mmap,
		bpf.LoadAbsolute{Off: argLo(3), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.MAP_SHARED, SkipTrue: 1},
		retAllow, retNotify)
	rule(unix.SYS_MMAP, mmap...)
	rule(unix.SYS_MPROTECT,
		bpf.LoadAbsolute{Off: argLo(2), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.PROT_EXEC, SkipTrue: 1},
		retAllow, retNotify)

	// clone: to the supervisor, which lets the Go runtime's thread flags
	// through (isGoClone) up to MaxThreads threads.
	rule(unix.SYS_CLONE, retNotify)

	// arch_prctl: setting and reading FS only.
	rule(unix.SYS_ARCH_PRCTL,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x1002, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x1003, SkipTrue: 1},
		retNotify, retAllow)

	// Signals only to itself.
	rule(unix.SYS_TGKILL,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p.Pid), SkipTrue: 1},
		retNotify, retAllow)
	// Not 0: on Linux that is every process in the caller's process group,
	// which holds mote and perhaps the user's shell.
	rule(unix.SYS_KILL,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p.Pid), SkipTrue: 1},
		retNotify, retAllow)

	// prlimit64 on itself only (pid 0), as the runtime reads and raises
	// RLIMIT_NOFILE: another pid's limits are another process's, mote's
	// among them (a CPU limit of one second would kill it). It may read any
	// limit but set only RLIMIT_NOFILE: a guest run by root could
	// otherwise raise the core limit stage 2 set to 0 (and have the kernel
	// write a core of its choosing into mote's directory) or the file size
	// limit that bounds its block devices.
	rule(unix.SYS_PRLIMIT64,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 8},
		bpf.LoadAbsolute{Off: argHi(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 6},
		bpf.LoadAbsolute{Off: argLo(2), Size: 4}, // new_limit
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 2},
		bpf.LoadAbsolute{Off: argHi(2), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 3},
		bpf.LoadAbsolute{Off: argLo(1), Size: 4}, // resource
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.RLIMIT_NOFILE, SkipTrue: 1},
		retNotify, retAllow)

	// fcntl: the descriptor flags and the file status flags, as on hvt,
	// with O_NONBLOCK kept and O_ASYNC clear. Not F_SETOWN, F_SETSIG and
	// O_ASYNC, with which a write to a pipe signals any process of the
	// user; not clearing O_NONBLOCK, which the ring eventfds share with
	// mote's device thread (a blocking write there would hang it); not
	// F_DUPFD, whose copies the rules that go by descriptor number would
	// not know.
	rule(unix.SYS_FCNTL,
		bpf.LoadAbsolute{Off: argLo(1), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.F_GETFD, SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.F_SETFD, SkipTrue: 6},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.F_GETFL, SkipTrue: 5},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.F_SETFL, SkipFalse: 3},
		bpf.LoadAbsolute{Off: argLo(2), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.O_ASYNC, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.O_NONBLOCK, SkipTrue: 1},
		retEINVAL, retAllow)

	// The clocks every process has (0–7); Linux reads other ids as another
	// process's CPU clock or a descriptor's, so they answer EINVAL, as on
	// hvt. The kernel takes the id's low 32 bits. timer_create likewise
	// (a timer on another process's CPU clock would watch that process);
	// its signal can go only to the guest's own threads, which the kernel
	// checks.
	for _, nr := range []uint32{unix.SYS_CLOCK_GETTIME, unix.SYS_TIMER_CREATE} {
		rule(nr,
			bpf.LoadAbsolute{Off: argLo(0), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: unix.CLOCK_BOOTTIME, SkipTrue: 1},
			retAllow, retEINVAL)
	}

	// ftruncate and fchmod: files of the tree, never a NIC's ring (a
	// shrunk ring would fault mote's device thread) nor a block device.
	fixed := append(append([]int{}, p.Rings...), never...) // rings, the image, block devices
	fdOps := []bpf.Instruction{bpf.LoadAbsolute{Off: argLo(0), Size: 4}}
	for i, fd := range fixed {
		fdOps = append(fdOps, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(fd), SkipTrue: uint8(len(fixed) - i)})
	}
	fdOps = append(fdOps, retAllow, retEINVAL)
	rule(unix.SYS_FTRUNCATE, fdOps...)
	rule(unix.SYS_FCHMOD, fdOps...)

	// The calls that name a path (openat, newfstatat, faccessat,
	// readlinkat, getcwd), and uname (whose node name is the host's), are
	// not allowed: they go to the supervisor,
	// which answers them from the guest's tree (files.go).
	// prctl: thread names, which the kernel keeps; every other option
	// EINVAL, naming memory (PR_SET_VMA) too, as on hvt and on a Linux
	// without CONFIG_ANON_VMA_NAME: Go's runtime then stops asking. The
	// kernel takes the option's low 32 bits.
	rule(unix.SYS_PRCTL,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PR_SET_NAME, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PR_GET_NAME, SkipTrue: 1},
		retEINVAL, retAllow)
	// ioctl: ENOTTY for every request, as on hvt. The guest's output may
	// be the host's terminal: TIOCSTI would type into it.
	rule(unix.SYS_IOCTL, bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOTTY)})
	// copy_file_range: ENOSYS, as on hvt; Go copies by read and write.
	rule(unix.SYS_COPY_FILE_RANGE, bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})

	// Socket options: success with no effect on abi.StackSocketFD (a
	// socket of the guest's own stack seen through its raw descriptor),
	// as on hvt. On any other descriptor the kernel answers ENOTSOCK or
	// EBADF: the guest has no socket (socket, socketpair and accept are
	// not allowed, and stage 2 closed every inherited descriptor above the
	// devices).
	for _, nr := range []uint32{unix.SYS_SETSOCKOPT, unix.SYS_GETSOCKOPT} {
		rule(nr,
			bpf.LoadAbsolute{Off: argLo(0), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: abi.StackSocketFD, SkipFalse: 3},
			bpf.LoadAbsolute{Off: argHi(0), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | 0},
			retAllow)
	}

	// Stage 2's own last steps: hand the listener to mote, then exec the
	// image from its pinned descriptor. Both descriptors are close-on-exec,
	// so neither call can succeed in the guest.
	rule(unix.SYS_SENDMSG,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p.NotifySock), SkipTrue: 1},
		retNotify, retAllow)
	rule(unix.SYS_EXECVEAT,
		bpf.LoadAbsolute{Off: argLo(0), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p.ImageFD), SkipFalse: 3},
		bpf.LoadAbsolute{Off: argLo(4), Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AT_EMPTY_PATH, SkipFalse: 1},
		retAllow, retNotify)

	for nr := range Allowed {
		rule(nr, retAllow)
	}

	// Header: right architecture, no x32 calls; then the dispatch on the
	// call number, one comparison per rule, then the default.
	emit(
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX8664, SkipTrue: 1},
		retKill,
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
		retKill,
	)
	// Dispatch: rules are laid out after the table; jumps skip forward.
	dispatch := len(blocks) + 1 // compares, then the default return
	offset := 0
	for i, b := range blocks {
		skip := dispatch - i - 1 + offset
		if skip > 255 {
			return nil, fmt.Errorf("spt: filter too large for short jumps (%d)", skip)
		}
		emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: b.nr, SkipTrue: uint8(skip)})
		offset += len(b.body)
	}
	emit(retNotify)
	for _, b := range blocks {
		emit(b.body...)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("spt: assembling the filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// Calls lists the system calls an spt guest may make, by number: those
// the filter allows, with or without conditions, and those the supervisor
// answers (files.go). docs/abi.md documents them (a test holds them
// equal).
func Calls() (map[uint32]bool, error) {
	prog, err := Build(Policy{Pid: 2, ImageFD: 3, NotifySock: 4})
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, _ := bpf.Disassemble(raw)
	out := map[uint32]bool{}
	// The header is 6 instructions; then one comparison per rule.
	for _, in := range insns[6:] {
		j, ok := in.(bpf.JumpIf)
		if !ok {
			break
		}
		out[j.Val] = true
	}
	for nr := range pathCalls {
		out[uint32(nr)] = true
	}
	return out, nil
}

// blockBounds checks a pread64 or pwrite64 on block device b: count
// (argument 2) below 4 GiB, at most 1 MiB and whole sectors; offset
// (argument 3) whole sectors; and offset + count at most the device's size,
// added as 64 bits (the low words, with their carry into the high word).
// It ends in allow and notify.
func blockBounds(b BlockFD) []bpf.Instruction {
	sizeHi, sizeLo := uint32(b.Size>>32), uint32(b.Size)
	const allow, notify = 20, 21 // the indices of the last two
	to := func(from, target int) uint8 { return uint8(target - from - 1) }
	return []bpf.Instruction{
		0:      bpf.LoadAbsolute{Off: argHi(2), Size: 4},
		1:      bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: to(1, notify)},
		2:      bpf.LoadAbsolute{Off: argLo(2), Size: 4},
		3:      bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: 1 << 20, SkipTrue: to(3, notify)},
		4:      bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: uint32(b.Sector - 1), SkipTrue: to(4, notify)},
		5:      bpf.TAX{}, // X = count
		6:      bpf.LoadAbsolute{Off: argLo(3), Size: 4},
		7:      bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: uint32(b.Sector - 1), SkipTrue: to(7, notify)},
		8:      bpf.ALUOpX{Op: bpf.ALUOpAdd}, // A = low word of the end
		9:      bpf.StoreScratch{Src: bpf.RegA, N: 0},
		10:     bpf.JumpIfX{Cond: bpf.JumpLessThan, SkipTrue: to(10, 13)}, // the sum wrapped: a carry
		11:     bpf.LoadAbsolute{Off: argHi(3), Size: 4},
		12:     bpf.Jump{Skip: uint32(to(12, 16))},
		13:     bpf.LoadAbsolute{Off: argHi(3), Size: 4},
		14:     bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: sizeHi, SkipTrue: to(14, notify)}, // (and +1 cannot wrap)
		15:     bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1},
		16:     bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: sizeHi, SkipTrue: to(16, notify)},
		17:     bpf.JumpIf{Cond: bpf.JumpEqual, Val: sizeHi, SkipFalse: to(17, allow)},
		18:     bpf.LoadScratch{Dst: bpf.RegA, N: 0},
		19:     bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: sizeLo, SkipTrue: to(19, notify)},
		allow:  retAllow,
		notify: retNotify,
	}
}
