package spt

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// The filter assembles for a policy with devices, stays small, and the
// unconditional allowlist stays near the ABI's size.
func TestFilterBuilds(t *testing.T) {
	f, err := Build(Policy{Pid: 42, Blocks: []BlockFD{{FD: 4, Size: 1 << 20, Sector: 512}, {FD: 5, Size: 8 << 30, Sector: 4096, ReadOnly: true}}, ImageFD: 14, NotifySock: 15})
	if err != nil {
		t.Fatal(err)
	}
	if len(f) > 400 {
		t.Errorf("filter has %d instructions", len(f))
	}
	conditional := 23                            // read, write, pread64, pwrite64, mmap, mprotect, clone, arch_prctl, tgkill, kill, prlimit64, fcntl, setsockopt, getsockopt, sendmsg, execveat, clock_gettime, timer_create, ftruncate, fchmod, prctl, ioctl (ENOTTY), copy_file_range (ENOSYS); path calls and capget go to the supervisor
	if n := len(Allowed) + conditional; n > 66 { // the Mote ABI as docs/abi.md lists it for spt; it grows only by what programs need (the profiler's timers, getrusage, mincore, the old clocks: issue 24)
		t.Errorf("%d system calls allowed", n)
	}
	for nr, why := range Allowed {
		if why == "" {
			t.Errorf("syscall %d has no reason", nr)
		}
	}
}

// The filter, run in x/net/bpf's VM on the seccomp data of calls a hostile
// guest could make to reach past itself, and of the calls Go makes.
func TestFilterArguments(t *testing.T) {
	const pid = 42
	run := filterVM(t, Policy{Pid: pid, ImageFD: 14, NotifySock: 15})
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		notify = unix.SECCOMP_RET_USER_NOTIF
		einval = unix.SECCOMP_RET_ERRNO | uint32(unix.EINVAL)
	)
	for _, c := range []struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"kill(self)", unix.SYS_KILL, []uint64{pid, 15}, allow},
		{"kill(0): the process group, mote's", unix.SYS_KILL, []uint64{0, 9}, notify},
		{"kill(-1)", unix.SYS_KILL, []uint64{^uint64(0), 9}, notify},
		{"prlimit64(self)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NOFILE, 0, 0}, allow},
		{"prlimit64(self, set NOFILE)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NOFILE, 0x1000, 0}, allow},
		{"prlimit64(self, read CORE)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CORE, 0, 0x1000}, allow},
		{"prlimit64(self, set CORE)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CORE, 0x1000, 0}, notify},
		{"prlimit64(self, set FSIZE, pointer above 4 GiB)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_FSIZE, 1 << 40, 0}, notify},
		{"prlimit64(another pid)", unix.SYS_PRLIMIT64, []uint64{pid - 1, unix.RLIMIT_CPU, 0x1000, 0}, notify},
		{"prlimit64(pid 2^32)", unix.SYS_PRLIMIT64, []uint64{1 << 32, unix.RLIMIT_CPU, 0x1000, 0}, notify},
		{"prctl(PR_SET_NAME)", unix.SYS_PRCTL, []uint64{unix.PR_SET_NAME, 0x1000}, allow},
		{"prctl(PR_GET_NAME)", unix.SYS_PRCTL, []uint64{unix.PR_GET_NAME, 0x1000}, allow},
		{"prctl(PR_SET_VMA)", unix.SYS_PRCTL, []uint64{unix.PR_SET_VMA, 0, 0x1000, 0x1000, 0x2000}, einval},
		{"prctl(PR_SET_SECCOMP)", unix.SYS_PRCTL, []uint64{unix.PR_SET_SECCOMP, 2}, einval},
		{"prctl(PR_SET_PDEATHSIG)", unix.SYS_PRCTL, []uint64{unix.PR_SET_PDEATHSIG, 9}, einval},
		{"timer_create(CLOCK_THREAD_CPUTIME_ID)", unix.SYS_TIMER_CREATE, []uint64{unix.CLOCK_THREAD_CPUTIME_ID, 0x1000, 0x2000}, allow},
		{"timer_create(pid 1's CPU clock)", unix.SYS_TIMER_CREATE, []uint64{0xfffffff2, 0x1000, 0x2000}, einval},
		{"capget: the supervisor answers", unix.SYS_CAPGET, []uint64{0x1000, 0x2000}, notify},
		{"fcntl(F_GETFD)", unix.SYS_FCNTL, []uint64{3, unix.F_GETFD}, allow},
		{"fcntl(F_SETFD)", unix.SYS_FCNTL, []uint64{3, unix.F_SETFD, unix.FD_CLOEXEC}, allow},
		{"fcntl(F_GETFL)", unix.SYS_FCNTL, []uint64{3, unix.F_GETFL}, allow},
		{"fcntl(F_SETFL, O_NONBLOCK)", unix.SYS_FCNTL, []uint64{3, unix.F_SETFL, unix.O_RDWR | unix.O_NONBLOCK}, allow},
		{"fcntl(F_SETFL, blocking)", unix.SYS_FCNTL, []uint64{3, unix.F_SETFL, unix.O_RDWR}, einval},
		{"fcntl(F_SETFL, O_ASYNC)", unix.SYS_FCNTL, []uint64{3, unix.F_SETFL, unix.O_NONBLOCK | unix.O_ASYNC}, einval},
		{"fcntl(F_SETOWN)", unix.SYS_FCNTL, []uint64{3, unix.F_SETOWN, 1}, einval},
		{"fcntl(F_SETSIG)", unix.SYS_FCNTL, []uint64{3, unix.F_SETSIG, 9}, einval},
		{"fcntl(F_DUPFD)", unix.SYS_FCNTL, []uint64{4, unix.F_DUPFD, 100}, einval},
		{"fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, []uint64{4, unix.F_DUPFD_CLOEXEC, 100}, einval},
		{"setsockopt(StackSocketFD)", unix.SYS_SETSOCKOPT, []uint64{abi.StackSocketFD, unix.IPPROTO_IP, unix.IP_PKTINFO}, unix.SECCOMP_RET_ERRNO},
		{"getsockopt(StackSocketFD)", unix.SYS_GETSOCKOPT, []uint64{abi.StackSocketFD, unix.SOL_SOCKET, unix.SO_RCVBUF}, unix.SECCOMP_RET_ERRNO},
		{"setsockopt(StackSocketFD + 2^32)", unix.SYS_SETSOCKOPT, []uint64{1<<32 | abi.StackSocketFD, 0, 0}, allow},
		{"mmap(anonymous)", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, ^uint64(0), 0}, allow},
		{"mmap(anonymous, exec)", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_EXEC, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, ^uint64(0), 0}, notify},
		{"mmap(a tree file, private)", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ, unix.MAP_PRIVATE, 20, 0}, allow},
		{"mmap(a tree file, shared)", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ, unix.MAP_SHARED, 20, 0}, notify},
		{"mmap(the image)", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ, unix.MAP_PRIVATE, 14, 0}, notify},
		{"ftruncate(a tree file)", unix.SYS_FTRUNCATE, []uint64{20, 0}, allow},
		{"ftruncate(the image)", unix.SYS_FTRUNCATE, []uint64{14, 0}, einval},
		{"fchmod(the image)", unix.SYS_FCHMOD, []uint64{14, 0o777}, einval},
		{"setsockopt(3): the kernel's ENOTSOCK", unix.SYS_SETSOCKOPT, []uint64{3, unix.SOL_SOCKET, unix.SO_RCVBUF}, allow},
	} {
		got := run(c.nr, c.args...)
		if got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
}

// filterVM builds the filter for p and returns a function that runs it in
// x/net/bpf's VM on a call's seccomp data, returning the action.
func filterVM(t *testing.T, p Policy) func(nr uint32, args ...uint64) uint32 {
	t.Helper()
	prog, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return func(nr uint32, args ...uint64) uint32 {
		// The kernel loads each 32-bit word of struct seccomp_data in
		// host order; the VM loads network order: words go big-endian.
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[offNr:], nr)
		binary.BigEndian.PutUint32(data[offArch:], auditArchX8664)
		for i, a := range args {
			binary.BigEndian.PutUint32(data[argLo(i):], uint32(a))
			binary.BigEndian.PutUint32(data[argHi(i):], uint32(a>>32))
		}
		got, err := vm.Run(data)
		if err != nil {
			t.Fatalf("%d %#x: %v", nr, args, err)
		}
		return uint32(got)
	}
}

// A block device's reads and writes stay inside it: offset + count at
// most its size, added as 64 bits. A write at a small device's last
// sector of up to 1 MiB grew its file before (RLIMIT_FSIZE is the largest
// device's size).
func TestFilterBlockBounds(t *testing.T) {
	const small, big = 64 << 10, 8<<30 + 4096
	run := filterVM(t, Policy{Pid: 42, ImageFD: 14, NotifySock: 15, Blocks: []BlockFD{
		{FD: 4, Size: small, Sector: 512}, {FD: 5, Size: big, Sector: 4096}}})
	const allow, notify = unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_USER_NOTIF
	for _, c := range []struct {
		name                string
		fd, count, offset   uint64
		wantRead, wantWrite uint32
	}{
		{"first sector", 4, 512, 0, allow, allow},
		{"last sector", 4, 512, small - 512, allow, allow},
		{"the whole device", 4, small, 0, allow, allow},
		{"past the end from the last sector", 4, 1024, small - 512, notify, notify},
		{"1 MiB from the start of a 64 KiB device", 4, 1 << 20, 0, notify, notify},
		{"at the end", 4, 512, small, notify, notify},
		{"unaligned offset", 4, 512, 100, notify, notify},
		{"unaligned count", 4, 100, 0, notify, notify},
		{"count of 4 GiB + 512", 4, 1<<32 | 512, 0, notify, notify},
		{"offset 2^32 (the low word 0)", 4, 512, 1 << 32, notify, notify},
		{"big: last page", 5, 4096, big - 4096, allow, allow},
		{"big: a page past the end", 5, 8192, big - 4096, notify, notify},
		{"big: across 4 GiB (a carry)", 5, 8192, 1<<32 - 4096, allow, allow},
		{"big: a carry into the last high word, to the end", 5, 8192, 2<<32 - 4096, allow, allow},
		{"big: a carry into the last high word, past the end", 5, 12288, 2<<32 - 4096, notify, notify},
		{"big: offset 2^64 - 4096 (a carry that would wrap)", 5, 8192, ^uint64(0) &^ 4095, notify, notify},
		{"another descriptor: the kernel's checks", 9, 1 << 20, 1 << 40, allow, allow},
	} {
		if got := run(unix.SYS_PREAD64, c.fd, 0x10000, c.count, c.offset); got != c.wantRead {
			t.Errorf("pread64 %s: %#x, want %#x", c.name, got, c.wantRead)
		}
		if got := run(unix.SYS_PWRITE64, c.fd, 0x10000, c.count, c.offset); got != c.wantWrite {
			t.Errorf("pwrite64 %s: %#x, want %#x", c.name, got, c.wantWrite)
		}
	}
}
