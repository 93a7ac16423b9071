package hvt

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/shim"
	"github.com/moteos/mote/host/sysnames"
)

// The Mote ABI: the system calls a guest may make, and how each is served.
// docs/abi.md is the specification; keep the two in step.

type sysArgs struct {
	nr  uint64
	a   [6]uint64
	rsp uint64 // the guest's stack pointer at the call
}

type sysFunc func(t *thread, a *sysArgs) int64

type sysEntry struct {
	name string
	fn   sysFunc
}

// sysDone is returned by handlers that replaced the whole register state
// (rt_sigreturn) or ended the thread; the dispatcher then leaves the
// registers alone.
const sysDone = int64(-1 << 62)

// sysOutside is returned by handlers whose arguments put the call outside
// the ABI (a clone that makes a process, not a thread; the handler counts
// it): the dispatcher treats it as a call the ABI lacks, so --strict stops
// the guest and otherwise it fails with ENOSYS, as spt does.
const sysOutside = sysDone + 1

// sysTable is filled in init: handlers reach reports, which name calls
// through the table.
var sysTable map[uint64]sysEntry

func init() {
	sysTable = map[uint64]sysEntry{
		unix.SYS_READ:           {"read", sysRead},
		unix.SYS_WRITE:          {"write", sysWrite},
		unix.SYS_CLOSE:          {"close", sysClose},
		unix.SYS_MMAP:           {"mmap", sysMmap},
		unix.SYS_MPROTECT:       {"mprotect", sysMprotect},
		unix.SYS_MUNMAP:         {"munmap", sysMunmap},
		unix.SYS_RT_SIGACTION:   {"rt_sigaction", func(t *thread, a *sysArgs) int64 { return t.sysRtSigaction(int(a.a[0]), a.a[1], a.a[2], a.a[3]) }},
		unix.SYS_RT_SIGPROCMASK: {"rt_sigprocmask", func(t *thread, a *sysArgs) int64 { return t.sysRtSigprocmask(int(a.a[0]), a.a[1], a.a[2], a.a[3]) }},
		unix.SYS_RT_SIGRETURN:   {"rt_sigreturn", sysRtSigreturn},
		unix.SYS_SCHED_YIELD:    {"sched_yield", func(t *thread, a *sysArgs) int64 { return 0 }},
		unix.SYS_MADVISE:        {"madvise", sysMadvise},
		unix.SYS_NANOSLEEP:      {"nanosleep", sysNanosleep},
		unix.SYS_GETPID:         {"getpid", func(t *thread, a *sysArgs) int64 { return 1 }},
		unix.SYS_GETPPID:        {"getppid", func(t *thread, a *sysArgs) int64 { return 0 }}, // pid 1 has no parent
		// The guest's identity is the user who ran mote, as on spt, where
		// the kernel answers: Go turned ENOSYS into a uid of -38.
		unix.SYS_GETUID:    {"getuid", func(t *thread, a *sysArgs) int64 { return int64(os.Getuid()) }},
		unix.SYS_GETEUID:   {"geteuid", func(t *thread, a *sysArgs) int64 { return int64(os.Geteuid()) }},
		unix.SYS_GETGID:    {"getgid", func(t *thread, a *sysArgs) int64 { return int64(os.Getgid()) }},
		unix.SYS_GETEGID:   {"getegid", func(t *thread, a *sysArgs) int64 { return int64(os.Getegid()) }},
		unix.SYS_GETGROUPS: {"getgroups", sysGetgroups},
		// Refused at once: Go copies by read and write instead.
		unix.SYS_COPY_FILE_RANGE:   {"copy_file_range", func(t *thread, a *sysArgs) int64 { return -int64(unix.ENOSYS) }},
		unix.SYS_CLONE:             {"clone", sysClone},
		unix.SYS_EXIT:              {"exit", sysExit},
		unix.SYS_KILL:              {"kill", func(t *thread, a *sysArgs) int64 { return t.sysKill(int(int32(a.a[0])), int(a.a[1])) }},
		unix.SYS_UNAME:             {"uname", sysUname},
		unix.SYS_FCNTL:             {"fcntl", sysFcntl},
		unix.SYS_SIGALTSTACK:       {"sigaltstack", func(t *thread, a *sysArgs) int64 { return t.sysSigaltstack(a.a[0], a.a[1], a.rsp) }},
		unix.SYS_PRCTL:             {"prctl", sysPrctl},
		unix.SYS_CAPGET:            {"capget", sysCapget},
		unix.SYS_GETRUSAGE:         {"getrusage", sysGetrusage},
		unix.SYS_MINCORE:           {"mincore", sysMincore},
		unix.SYS_GETTIMEOFDAY:      {"gettimeofday", sysGettimeofday},
		unix.SYS_TIME:              {"time", sysTime},
		unix.SYS_SETITIMER:         {"setitimer", sysSetitimer},
		unix.SYS_TIMER_CREATE:      {"timer_create", sysTimerCreate},
		unix.SYS_TIMER_SETTIME:     {"timer_settime", sysTimerSettime},
		unix.SYS_TIMER_GETTIME:     {"timer_gettime", sysTimerGettime},
		unix.SYS_TIMER_DELETE:      {"timer_delete", sysTimerDelete},
		unix.SYS_ARCH_PRCTL:        {"arch_prctl", sysArchPrctl},
		unix.SYS_GETTID:            {"gettid", func(t *thread, a *sysArgs) int64 { return int64(t.tid) }},
		unix.SYS_FUTEX:             {"futex", sysFutex},
		unix.SYS_SCHED_GETAFFINITY: {"sched_getaffinity", sysSchedGetaffinity},
		unix.SYS_CLOCK_GETTIME:     {"clock_gettime", sysClockGettime},
		unix.SYS_EXIT_GROUP:        {"exit_group", sysExitGroup},
		unix.SYS_EPOLL_CTL:         {"epoll_ctl", sysEpollCtl},
		unix.SYS_TGKILL:            {"tgkill", func(t *thread, a *sysArgs) int64 { return t.sysTgkill(int(a.a[0]), int(a.a[1]), int(a.a[2])) }},
		unix.SYS_OPENAT:            {"openat", sysOpenat},
		unix.SYS_READLINKAT:        {"readlinkat", sysReadlinkat},
		unix.SYS_NEWFSTATAT:        {"newfstatat", sysNewfstatat},
		unix.SYS_FACCESSAT:         {"faccessat", sysFaccessat},
		unix.SYS_FACCESSAT2:        {"faccessat2", sysFaccessat},
		unix.SYS_GETCWD:            {"getcwd", sysGetcwd},
		unix.SYS_LSEEK:             {"lseek", sysLseek},
		unix.SYS_GETDENTS64:        {"getdents64", sysGetdents64},
		unix.SYS_MKDIRAT:           {"mkdirat", sysMkdirat},
		unix.SYS_UNLINKAT:          {"unlinkat", sysUnlinkat},
		unix.SYS_RENAMEAT:          {"renameat", sysRenameat},
		unix.SYS_RENAMEAT2:         {"renameat2", sysRenameat},
		unix.SYS_FCHMODAT:          {"fchmodat", sysFchmodat},
		unix.SYS_FCHMODAT2:         {"fchmodat2", sysFchmodat},
		unix.SYS_FTRUNCATE:         {"ftruncate", sysFdOp},
		unix.SYS_TRUNCATE:          {"truncate", sysTruncate},
		unix.SYS_STATFS:            {"statfs", sysStatfs},
		unix.SYS_SYMLINKAT:         {"symlinkat", sysSymlinkat},
		unix.SYS_LINKAT:            {"linkat", sysLinkat},
		unix.SYS_UTIMENSAT:         {"utimensat", sysUtimensat},
		unix.SYS_CHDIR:             {"chdir", sysChdir},
		unix.SYS_FCHDIR:            {"fchdir", sysFchdir},
		unix.SYS_FCHOWNAT:          {"fchownat", sysChown},
		unix.SYS_FCHOWN:            {"fchown", sysChown},
		unix.SYS_FSTATFS:           {"fstatfs", sysFstatfs},
		unix.SYS_IOCTL:             {"ioctl", sysIoctl},
		unix.SYS_FCHMOD:            {"fchmod", sysFdOp},
		unix.SYS_PIPE2:             {"pipe2", sysPipe2},
		unix.SYS_PREAD64:           {"pread64", sysPread64},
		unix.SYS_PWRITE64:          {"pwrite64", sysPwrite64},
		unix.SYS_FDATASYNC:         {"fdatasync", sysFdatasync},
		unix.SYS_FSYNC:             {"fsync", sysFdatasync},
		unix.SYS_EPOLL_PWAIT:       {"epoll_pwait", sysEpollPwait},
		unix.SYS_EVENTFD2:          {"eventfd2", sysEventfd2},
		unix.SYS_EPOLL_CREATE1:     {"epoll_create1", sysEpollCreate1},
		unix.SYS_PRLIMIT64:         {"prlimit64", sysPrlimit},
		unix.SYS_SETSOCKOPT:        {"setsockopt", sysSockopt},
		unix.SYS_FSTAT:             {"fstat", sysFstat},
		unix.SYS_GETSOCKOPT:        {"getsockopt", sysSockopt},
		unix.SYS_GETRANDOM:         {"getrandom", sysGetrandom},
		shim.NRSigcheck:            {"mote_sigcheck", func(t *thread, a *sysArgs) int64 { return 0 }},
		shim.NRSigreturn:           {"rt_sigreturn", sysRtSigreturn},
	}
}

// syscall serves the system call the vCPU stopped at; rsp is the caller's
// stack pointer. It reports whether the thread is done.
func (t *thread) syscall(rsp uint64) bool {
	run := t.cpu.k.Run
	r := run.Regs()
	a := sysArgs{nr: r.RAX, a: [6]uint64{r.RDI, r.RSI, r.RDX, r.R10, r.R8, r.R9}, rsp: rsp}
	ret := r.RCX // SYSCALL saved the return address in RCX
	e, ok := sysTable[a.nr]
	start := time.Now()
	res := sysOutside
	if ok {
		res = e.fn(t, &a)
	}
	if res == sysOutside {
		if t.m.cfg.Strict {
			t.badSyscall(&a, userState{rip: ret, rsp: rsp, rflags: rflagsDefault})
			return true
		}
		res = -int64(unix.ENOSYS)
	}
	took := time.Since(start)
	t.m.stats.syscall(a.nr, took)
	t.record(&a, res)
	if t.m.trace != nil {
		t.m.trace.printf("%9.3fms t%d %s(%#x, %#x, %#x) = %s [%v]", float64(time.Since(t.m.start).Microseconds())/1e3,
			t.tid, sysName(a.nr), a.a[0], a.a[1], a.a[2], resultString(res), took.Round(time.Microsecond))
	}
	if res == sysDone {
		return t.m.exiting.Load() || t.exited
	}
	r.RAX = uint64(res)
	r.R11 = rflagsDefault
	t.resume(userState{rip: ret, rsp: rsp, rflags: rflagsDefault})
	return false
}

func (t *thread) record(a *sysArgs, res int64) {
	t.last[t.lastNext%len(t.last)] = sysRecord{nr: a.nr, args: [3]uint64{a.a[0], a.a[1], a.a[2]}, ret: res}
	t.lastNext++
}

// errno converts an error to a negated errno for the guest.
func errno(err error) int64 {
	var en unix.Errno
	if errors.As(err, &en) {
		return -int64(en)
	}
	var oom *oomError
	if errors.As(err, &oom) {
		return -int64(unix.ENOMEM)
	}
	return -int64(unix.EIO)
}

func sysName(nr uint64) string {
	if e, ok := sysTable[nr]; ok {
		return e.name
	}
	return sysnames.Name(nr)
}

// noFile answers a path lookup: the guest has no file system, so no path
// exists.

func sysRtSigreturn(t *thread, a *sysArgs) int64 {
	if err := t.sysRtSigreturn(a.rsp, a.nr == shim.NRSigreturn); err != nil {
		r := t.cpu.k.Run.Regs()
		t.crash("rt_sigreturn: "+err.Error(), &userState{rip: r.RCX, rsp: a.rsp})
	}
	return sysDone
}

func sysExit(t *thread, a *sysArgs) int64 {
	t.exited = true
	return sysDone
}

func sysExitGroup(t *thread, a *sysArgs) int64 {
	t.m.exit(int(a.a[0]&0xff), nil)
	return sysDone
}

func sysArchPrctl(t *thread, a *sysArgs) int64 {
	const archSetFS, archGetFS = 0x1002, 0x1003
	s := t.cpu.k.Run.Sregs()
	switch a.a[0] {
	case archSetFS:
		if a.a[1] >= userTop {
			return -int64(unix.EPERM)
		}
		s.FS.Base = a.a[1]
		t.cpu.k.Run.MarkDirty(kvm.SyncRegsSregs)
		return 0
	case archGetFS:
		if err := t.m.mem.writeU64(a.a[1], s.FS.Base); err != nil {
			return errno(err)
		}
		return 0
	}
	return -int64(unix.EINVAL)
}

func sysSchedGetaffinity(t *thread, a *sysArgs) int64 {
	if a.a[1] < 8 {
		return -int64(unix.EINVAL)
	}
	mask := uint64(1)<<uint(t.m.cfg.CPUs) - 1
	if t.m.cfg.CPUs == 64 {
		mask = ^uint64(0)
	}
	if err := t.m.mem.writeU64(a.a[2], mask); err != nil {
		return errno(err)
	}
	return 8
}

func sysUname(t *thread, a *sysArgs) int64 {
	if err := t.m.mem.copyOut(a.a[0], t.m.cfg.Files.Utsname()); err != nil {
		return errno(err)
	}
	return 0
}

func sysPrlimit(t *thread, a *sysArgs) int64 {
	const rlimitNofile, rlimitStack = 7, 3
	pid, res, newp, oldp := int(a.a[0]), int(a.a[1]), a.a[2], a.a[3]
	if pid != 0 && pid != 1 {
		return -int64(unix.ESRCH)
	}
	var cur, max uint64
	switch res {
	case rlimitNofile:
		cur, max = maxFDs, maxFDs
	case rlimitStack:
		cur, max = stackSize, stackSize
	default:
		return -int64(unix.EINVAL)
	}
	if oldp != 0 {
		var b [16]byte
		le.PutUint64(b[0:], cur)
		le.PutUint64(b[8:], max)
		if err := t.m.mem.copyOut(oldp, b[:]); err != nil {
			return errno(err)
		}
	}
	if newp != 0 {
		var b [16]byte
		if err := t.m.mem.copyIn(newp, b[:]); err != nil {
			return errno(err)
		}
		// Limits are fixed: lowering is accepted and ignored, raising refused.
		if le.Uint64(b[0:]) > max || le.Uint64(b[8:]) > max {
			return -int64(unix.EPERM)
		}
	}
	return 0
}

func sysGetrandom(t *thread, a *sysArgs) int64 {
	n := min(a.a[1], 1<<20)
	buf := make([]byte, n)
	if _, err := readRandom(buf); err != nil {
		return -int64(unix.EIO)
	}
	if err := t.m.mem.copyOut(a.a[0], buf); err != nil {
		return errno(err)
	}
	return int64(n)
}

func readRandom(b []byte) (int, error) { return rand.Read(b) }

func sysClockGettime(t *thread, a *sysArgs) int64 {
	// The clocks every process has. Linux reads other ids as another
	// process's CPU clock or a descriptor's: the host's, not the guest's.
	if a.a[0] > unix.CLOCK_BOOTTIME {
		return -int64(unix.EINVAL)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(a.a[0]), &ts); err != nil {
		return errno(err)
	}
	var b [16]byte
	le.PutUint64(b[0:], uint64(ts.Sec))
	le.PutUint64(b[8:], uint64(ts.Nsec))
	if err := t.m.mem.copyOut(a.a[1], b[:]); err != nil {
		return errno(err)
	}
	return 0
}

// sysGettimeofday is CLOCK_REALTIME in microseconds; the time zone,
// which Linux keeps only for old programs, is UTC.
func sysGettimeofday(t *thread, a *sysArgs) int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	if a.a[0] != 0 {
		var b [16]byte
		le.PutUint64(b[0:], uint64(ts.Sec))
		le.PutUint64(b[8:], uint64(ts.Nsec/1000))
		if err := t.m.mem.copyOut(a.a[0], b[:]); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	if a.a[1] != 0 {
		if err := t.m.mem.copyOut(a.a[1], make([]byte, 8)); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	return 0
}

// sysTime is CLOCK_REALTIME in seconds, also stored at its argument.
func sysTime(t *thread, a *sysArgs) int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	if a.a[0] != 0 {
		if err := t.m.mem.writeU64(a.a[0], uint64(ts.Sec)); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	return ts.Sec
}

// readTimespec reads a relative timeout; ok is false for a nil pointer.
func (t *thread) readTimespec(va uint64) (d time.Duration, ok bool, err error) {
	if va == 0 {
		return 0, false, nil
	}
	var b [16]byte
	if err := t.m.mem.copyIn(va, b[:]); err != nil {
		return 0, false, err
	}
	sec, nsec := int64(le.Uint64(b[0:])), int64(le.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return 0, false, unix.EINVAL
	}
	if sec > 1<<32 {
		sec = 1 << 32
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec), true, nil
}

func sysNanosleep(t *thread, a *sysArgs) int64 {
	d, ok, err := t.readTimespec(a.a[0])
	if err != nil {
		return errno(err)
	}
	if !ok {
		return -int64(unix.EFAULT)
	}
	if t.wait(nil, d, true) {
		return -int64(unix.EINTR)
	}
	return 0
}

// wait blocks until ch is ready, the timeout passes (if timed) or the
// thread is kicked; it reports whether it was kicked.
func (t *thread) wait(ch <-chan struct{}, d time.Duration, timed bool) (kicked bool) {
	if t.interrupted() {
		return true
	}
	var timeout <-chan time.Time
	if timed {
		tm := time.NewTimer(d)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-ch:
		return false
	case <-timeout:
		return false
	case <-t.kickCh:
		return true
	}
}

// interrupted reports whether a wait must end at once: the guest is
// exiting or a signal the thread does not block is pending.
func (t *thread) interrupted() bool {
	if t.m.exiting.Load() {
		return true
	}
	p := t.pendingSet() | atomic.LoadUint64(t.m.procPending())
	return p&^t.mask() != 0
}

// cloneFailed reports the first clone the tender could not serve (the
// guest gets EAGAIN): a guest retrying at its thread limit printed one
// line per attempt.
func (m *machine) cloneFailed(err error) {
	if m.cloneFailures.Add(1) == 1 {
		fmt.Fprintf(m.stderr, "mote: clone: %v (EAGAIN; later failures not shown)\n", err)
	}
}

func sysClone(t *thread, a *sysArgs) int64 {
	flags, stack, tls := a.a[0], a.a[1], a.a[4]
	if flags&unix.CLONE_THREAD == 0 { // a process (fork, os/exec): a unikernel has one
		t.m.stats.outsideCall("clone (nr 56) without CLONE_THREAD")
		return sysOutside
	}
	if flags&^unix.CLONE_SETTLS != abi.CloneThread {
		return -int64(unix.EINVAL)
	}
	m := t.m
	c, err := m.newVCPU()
	if err != nil {
		m.cloneFailed(err)
		return -int64(unix.EAGAIN)
	}
	// The child starts as a copy of the parent at the instruction after
	// SYSCALL, on its new stack, with RAX 0 and its own FS base.
	run := t.cpu.k.Run
	regs := *run.Regs()
	regs.RAX, regs.RSP, regs.RIP, regs.RFLAGS = 0, stack, regs.RCX, rflagsDefault
	regs.R11 = rflagsDefault
	sregs := m.initialSregs(c)
	sregs.FS.Base = run.Sregs().FS.Base
	if flags&unix.CLONE_SETTLS != 0 {
		sregs.FS.Base = tls
	}
	child, err := m.addThread(c, t)
	if err != nil {
		m.parkVCPU(c)
		m.cloneFailed(err)
		return -int64(unix.EAGAIN)
	}
	sregs.GS.Base = child.blkVA
	if err := c.k.SetSregs(&sregs); err == nil {
		err = c.k.SetRegs(&regs)
	}
	if err != nil {
		m.cloneFailed(err)
		m.dropThread(child)
		return -int64(unix.EAGAIN)
	}
	// As on Linux, the child starts with the parent's vector state (a
	// vCPU taken from the idle ones would otherwise bring a dead thread's).
	var xs kvm.XSAVE
	err = t.cpu.k.GetXSAVE(&xs)
	if err == nil {
		err = c.k.SetXSAVE(&xs)
	}
	if err != nil {
		m.cloneFailed(err)
		m.dropThread(child)
		return -int64(unix.EAGAIN)
	}
	m.startThread(child)
	return int64(child.tid)
}

func resultString(res int64) string {
	switch {
	case res == sysDone:
		return "-"
	case res < 0 && res > -4096:
		return fmt.Sprintf("-%v", unix.Errno(-res))
	case res > 0xffff:
		return fmt.Sprintf("%#x", res)
	}
	return fmt.Sprint(res)
}

// Calls lists the Linux system calls the tender serves, by number: the
// Mote ABI on hvt, which docs/abi.md documents (a test holds them equal).
// The shim's private numbers are not Linux calls and are left out.
func Calls() map[uint64]string {
	out := map[uint64]string{}
	for nr, e := range sysTable {
		if nr < 1<<16 {
			out[nr] = e.name
		}
	}
	return out
}

// sysGetgroups gives the guest's one user's group as its only
// supplementary group, as /etc/group says.
func sysGetgroups(t *thread, a *sysArgs) int64 {
	size := int32(a.a[0])
	if size < 0 {
		return -int64(unix.EINVAL)
	}
	if size == 0 {
		return 1
	}
	var b [4]byte
	le.PutUint32(b[:], uint32(os.Getgid()))
	if err := t.m.mem.copyOut(a.a[1], b[:]); err != nil {
		return -int64(unix.EFAULT)
	}
	return 1
}
