package spt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/exitstatus"
	"github.com/moteos/mote/host/image"
	"github.com/moteos/mote/host/procs"
	"github.com/moteos/mote/host/ringdev"
	"github.com/moteos/mote/host/sysnames"
	"github.com/moteos/mote/host/vfs"
)

// Exit statuses, as the hvt tender's.
const (
	ExitTender     = exitstatus.Tender
	ExitBadSyscall = exitstatus.BadSyscall
)

// Config describes one run.
type Config struct {
	Image  string
	Args   []string
	Env    []string
	Memory uint64 // sets GOMEMLIMIT (¾ of it) unless Env does, and RLIMIT_DATA (dataLimit)
	// CPUs sets GOMAXPROCS unless Env does: the Go code runs on as many
	// threads as an hvt guest has vCPUs, without pinning the process to
	// particular host CPUs. One is also faster for a network service on a
	// small host: netstack's hand-offs between threads cost wake-ups.
	CPUs   int
	Strict bool // kill on a call outside the ABI (else ENOSYS, reported)

	NICs   []NIC
	Blocks []Block
	Trees  []abi.Tree
	// Files is the guest's file tree (nil: none, every path is ENOENT);
	// Cwd its working directory ("" is /).
	Files *vfs.FS
	Cwd   string

	Stdout, Stderr io.Writer

	// Ready, if set, is called before the guest process starts: devices
	// whose host side starts meanwhile (a user network) wait there. An
	// error ends the run before the guest runs.
	Ready func() error

	// OnNIC, if set, is given each NIC's frame mover once it exists, so
	// that the caller can read its counters (mote run --metrics).
	OnNIC func(name string, dev *ringdev.Device)
}

// NIC is a network interface: HostFD carries whole frames (a TAP device or
// a SOCK_SEQPACKET socket). It stays in mote, whose device thread moves
// its frames to and from rings the guest maps (host/ringdev); the guest
// gets the rings, not HostFD. Run owns HostFD once it has made the NIC's
// device, and closes it when the run ends (a Run that fails before that
// leaves it to the caller).
type NIC struct {
	abi.NIC
	HostFD int
}

// Block is a block device.
type Block struct {
	Name       string
	File       *os.File
	ReadOnly   bool
	SectorSize int
}

// ExitError is a run mote ended, with its status and report.
type ExitError = exitstatus.Error

// Run starts the image confined and returns its exit status.
func Run(ctx context.Context, cfg Config) (int, error) {
	img, err := image.Open(cfg.Image)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	defer img.Close()

	man := &abi.Manifest{Version: abi.Version, Target: abi.TargetSPT}
	var extra []*os.File // fdDevice, fdDevice+1, …
	fd := 3
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: fmt.Sprintf("spt: eventfd: %v", err)}
	}
	var (
		devs    []*ringDevice
		serving sync.WaitGroup
	)
	defer func() { // the devices stop, then their memory and descriptors go
		unix.Write(stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		serving.Wait()
		for _, d := range devs {
			d.close()
		}
		unix.Close(stop)
	}()
	// The supervisor's poll, the wait for the guest and each device
	// thread live in system calls.
	procs.Reserve(2 + len(cfg.NICs))
	var (
		rings    []int
		nicFiles []*os.File // the child's copies: closed here once it has them
	)
	for _, n := range cfg.NICs {
		d := n.NIC
		dev, files, err := newRingDevice(n)
		if err != nil {
			return ExitTender, &ExitError{Status: ExitTender, Report: fmt.Sprintf("spt: nic %s: %v", d.Name, err)}
		}
		devs = append(devs, dev)
		if cfg.OnNIC != nil {
			cfg.OnNIC(d.Name, dev.Device)
		}
		dev.Stop = stop
		serving.Add(1)
		go func() {
			defer serving.Done()
			runtime.LockOSThread() // and left locked: the thread ends with the goroutine
			dev.Serve()
		}()
		d.FD, d.RingFD, d.KickFD, d.Ring, d.Kick = fd, fd+1, fd+2, 0, 0
		man.Net = append(man.Net, d)
		rings = append(rings, fd+1)
		extra = append(extra, files...)
		nicFiles = append(nicFiles, files...)
		fd += 3
	}
	var blocks []BlockFD
	var fsize uint64
	for _, b := range cfg.Blocks {
		ss := b.SectorSize
		if ss == 0 {
			ss = 512
		}
		st, err := b.File.Stat()
		if err != nil {
			return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
		}
		if st.Size()%int64(ss) != 0 || st.Size() == 0 {
			return ExitTender, &ExitError{Status: ExitTender, Report: fmt.Sprintf("spt: block %s: %d bytes is not a whole number of %d-byte sectors", b.Name, st.Size(), ss)}
		}
		man.Block = append(man.Block, abi.Block{Name: b.Name, FD: fd, SectorSize: ss, Sectors: st.Size() / int64(ss), ReadOnly: b.ReadOnly})
		blocks = append(blocks, BlockFD{FD: fd, Size: uint64(st.Size()), Sector: uint64(ss), ReadOnly: b.ReadOnly})
		if !b.ReadOnly {
			fsize = max(fsize, uint64(st.Size()))
		}
		extra = append(extra, b.File)
		fd++
	}
	man.FS = cfg.Trees
	js, err := man.Encode()
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	env := append([]string(nil), cfg.Env...)
	env = append(env, abi.EnvManifest+"="+string(js))
	if cfg.CPUs > 0 && !hasKey(env, "GOMAXPROCS") {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(cfg.CPUs))
	}
	if cfg.Memory > 0 && !hasKey(env, "GOMEMLIMIT") {
		env = append(env, "GOMEMLIMIT="+strconv.FormatUint(cfg.Memory*3/4, 10))
	}
	p := plan{Argv: append([]string{filepath.Base(cfg.Image)}, cfg.Args...), Env: env, Devices: len(extra), Blocks: blocks, Rings: rings, FSize: fsize, Data: dataLimit(cfg.Memory)}

	planR, planW, err := os.Pipe()
	if err != nil {
		return ExitTender, err
	}
	defer planR.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		planW.Close()
		return ExitTender, err
	}
	mine, theirs := os.NewFile(uintptr(sp[0]), "notify"), os.NewFile(uintptr(sp[1]), "notify")
	defer mine.Close()

	self, err := os.Executable()
	if err != nil {
		return ExitTender, err
	}
	cmd := exec.Command(self, Stage2Arg)
	cmd.Env = []string{} // the guest's environment is the plan's, nothing inherited
	// Pipes that mote relays, never mote's own descriptors: a terminal
	// passed on would let the guest read keystrokes through its stdout (a
	// terminal is open for reading and writing) and leave it non-blocking
	// for the shell. os/exec makes the pipes for a writer that is not a
	// file.
	cmd.Stdout, cmd.Stderr = struct{ io.Writer }{orDiscard(cfg.Stdout)}, struct{ io.Writer }{orDiscard(cfg.Stderr)}
	cmd.ExtraFiles = append([]*os.File{planR, theirs, img.File()}, extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		planW.Close()
		theirs.Close()
		return ExitTender, &ExitError{Status: ExitTender, Report: fmt.Sprintf("spt: starting stage 2: %v", err)}
	}
	theirs.Close()
	for _, f := range nicFiles {
		f.Close()
	}
	if cfg.Ready != nil {
		// Stage 2 waits for its plan; the guest has not started.
		if err := cfg.Ready(); err != nil {
			// Killed before its plan ends, so that it cannot report the
			// plan's end as an error of its own.
			cmd.Process.Kill()
			cmd.Wait()
			planW.Close()
			return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
		}
	}
	json.NewEncoder(planW).Encode(p)
	planW.Close()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	sup := supervisor{files: files{fs: cfg.Files, cwd: cfg.Cwd}}
	if sup.files.cwd == "" {
		sup.files.cwd = "/"
	}
	sup.wg.Add(1) // before the goroutine runs: wait must not return before it ends
	go sup.watch(mine, cmd.Process, cfg.Strict, done)
	go func() {
		var kill <-chan time.Time
		for {
			select {
			case s := <-sigs:
				if kill != nil {
					cmd.Process.Kill() // asked twice: no more waiting
					continue
				}
				cmd.Process.Signal(s)
				// A guest that stopped itself would never take it.
				cmd.Process.Signal(syscall.SIGCONT)
				kill = time.After(StopGrace)
			case <-kill:
				cmd.Process.Kill()
			case <-ctx.Done():
				cmd.Process.Kill()
			case <-done:
				return
			}
		}
	}()
	werr := cmd.Wait()
	close(done)
	sup.wait()

	if bad := sup.fatal(); bad != "" {
		return ExitBadSyscall, &ExitError{Status: ExitBadSyscall, Report: "mote: " + bad}
	}
	if n := sup.refusedClones(); n > 0 {
		fmt.Fprintf(orDiscard(cfg.Stderr), "mote: the guest reached %d threads, spt's limit: %d clones answered EAGAIN\n", MaxThreads, n)
	}
	if n := sup.outside(); n != "" {
		fmt.Fprintf(orDiscard(cfg.Stderr), "mote: the guest made system calls outside the Mote ABI (answered ENOSYS): %s\n", n)
		for _, h := range abi.Hints(strings.Split(n, ", ")) {
			fmt.Fprintf(orDiscard(cfg.Stderr), "mote: %s\n", h)
		}
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if ws.Signal() == syscall.SIGSYS {
				return ExitBadSyscall, &ExitError{Status: ExitBadSyscall, Report: "mote: the guest was killed by the seccomp filter (SIGSYS)"}
			}
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if werr != nil {
		return ExitTender, werr
	}
	return 0, nil
}

// StopGrace is how long a guest has to end after mote passes it SIGINT,
// SIGTERM or SIGHUP before mote kills it (as docker stop waits): a guest
// that ignores the signal, or stopped itself with SIGSTOP, must not hold
// mote. A second signal kills it at once.
const StopGrace = 10 * time.Second

// dataLimit is the guest's RLIMIT_DATA for memory (-m): what hvt lets a
// guest commit, max(2 × memory, memory + 64 MiB). A Go heap maps more than
// it touches (it grows in chunks of 4 MiB and more), so a limit of memory
// itself would stop programs that hvt runs; hvt also bounds what a guest
// touches to memory, which spt cannot without a cgroup.
func dataLimit(memory uint64) uint64 {
	if memory == 0 {
		return 0
	}
	return max(2*memory, memory+64<<20)
}

func hasKey(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// supervisor answers the filter's notifications: calls outside the ABI.
type supervisor struct {
	files  files // the guest's tree, for the calls that name a path
	mu     sync.Mutex
	wg     sync.WaitGroup
	bad    string
	counts map[string]int
	// clonesRefused counts clones answered EAGAIN at MaxThreads.
	clonesRefused int
	started       bool
}

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

const (
	ioctlNotifRecv = 0xc0502100
	ioctlNotifSend = 0xc0182101
)

func (s *supervisor) watch(sock *os.File, proc *os.Process, strict bool, done <-chan struct{}) {
	defer s.wg.Done()
	// The listener arrives from stage 2 over the socket.
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	sock.SetReadDeadline(time.Now().Add(time.Minute))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
	if err != nil {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return
	}
	listener := fds[0]
	defer unix.Close(listener)
	// done rings an eventfd, so that the loop sleeps in poll until a
	// call or the end comes: an idle guest costs its supervisor nothing.
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return
	}
	rang := make(chan struct{})
	go func() {
		<-done
		unix.Write(stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		close(rang)
	}()
	// Closed once rung, never before: its number may not be written to
	// after it names another file.
	defer func() { <-rang; unix.Close(stop) }()
	for {
		pfd := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		n, _ := unix.Poll(pfd, -1)
		if pfd[1].Revents != 0 {
			return
		}
		if n <= 0 || pfd[0].Revents&unix.POLLIN == 0 {
			if pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				return
			}
			continue
		}
		var req seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifRecv, uintptr(unsafe.Pointer(&req))); e != 0 {
			continue
		}
		if pathCalls[req.Nr] {
			res, answered := s.files.serve(listener, &req)
			if !answered {
				resp := seccompNotifResp{ID: req.ID}
				if res < 0 {
					resp.Error = int32(res)
				} else {
					resp.Val = res
				}
				unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifSend, uintptr(unsafe.Pointer(&resp)))
			}
			continue
		}
		if req.Nr == unix.SYS_CLONE && isGoClone(req.Args[0]) {
			resp := cloneAnswer(req.ID, proc.Pid)
			if resp.Error != 0 {
				s.mu.Lock()
				s.clonesRefused++
				s.mu.Unlock()
			}
			unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifSend, uintptr(unsafe.Pointer(&resp)))
			continue
		}
		name := sysnames.Name(uint64(req.Nr))
		desc := fmt.Sprintf("%s (nr %d, args %#x %#x %#x)", name, req.Nr, req.Args[0], req.Args[1], req.Args[2])
		s.mu.Lock()
		s.countLocked(fmt.Sprintf("%s (nr %d)", name, req.Nr))
		if strict && s.bad == "" {
			s.bad = "guest made system call " + desc + " outside the Mote ABI (--strict; killed by the seccomp filter's supervisor)"
		}
		s.mu.Unlock()
		if strict {
			proc.Kill()
			continue
		}
		resp := seccompNotifResp{ID: req.ID, Error: -int32(unix.ENOSYS)}
		unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifSend, uintptr(unsafe.Pointer(&resp)))
	}
}

// maxOutside bounds the distinct calls outside the ABI counted by name:
// a guest trying every number must not grow the count without end.
const maxOutside = 64

// countLocked counts a call outside the ABI for the report at exit. s.mu
// is held.
func (s *supervisor) countLocked(call string) {
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	if _, seen := s.counts[call]; !seen && len(s.counts) >= maxOutside {
		call = "other calls"
	}
	s.counts[call]++
}

func (s *supervisor) wait() { s.wg.Wait() }

func (s *supervisor) fatal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

func (s *supervisor) refusedClones() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clonesRefused
}

func (s *supervisor) outside() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, n := range s.counts {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	return strings.Join(out, ", ")
}

// ringDevice is a NIC's frame mover in mote and what the guest gets of
// it: the eventfd it waits on, the rings as a memory file it maps, and
// the eventfd it writes to wake the mover.
type ringDevice struct {
	*ringdev.Device
	mem int
}

// newRingDevice makes n's rings and eventfds; files are the guest's
// descriptors, in manifest order: notification, rings, doorbell.
func newRingDevice(n NIC) (*ringDevice, []*os.File, error) {
	if err := unix.SetNonblock(n.HostFD, true); err != nil {
		return nil, nil, err
	}
	// Host is set once the device is whole: until then it is the caller's.
	d := &ringDevice{Device: &ringdev.Device{Host: -1, Notify: -1, Kick: -1}, mem: -1}
	var err error
	// Sealed at its size: the guest maps it, and can neither grow nor
	// shrink it under mote's mapping.
	if d.mem, err = unix.MemfdCreate("mote-rings-"+n.Name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING); err == nil {
		if err = unix.Ftruncate(d.mem, abi.RingSize); err == nil {
			_, err = unix.FcntlInt(uintptr(d.mem), unix.F_ADD_SEALS, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
		}
	}
	if err == nil {
		d.Ring, err = unix.Mmap(d.mem, 0, abi.RingSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	}
	if err == nil {
		d.Notify, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}
	if err == nil {
		d.Kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}
	if err != nil {
		d.close()
		return nil, nil, err
	}
	// The child gets duplicates: os.File closes its own descriptor when
	// collected, and the device keeps using these.
	var files []*os.File
	for _, fd := range []int{d.Notify, d.mem, d.Kick} {
		g, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			d.close()
			return nil, nil, err
		}
		files = append(files, os.NewFile(uintptr(g), n.Name))
	}
	d.Host = n.HostFD
	return d, files, nil
}

func (d *ringDevice) close() {
	if d.Ring != nil {
		unix.Munmap(d.Ring)
	}
	for _, fd := range []int{d.Notify, d.Kick, d.mem, d.Host} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
