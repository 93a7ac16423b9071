package hvt

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// The guest's descriptor table. Descriptors exist only as the tender
// creates them: standard input (always at end of file), the console
// (standard output and error), and the eventfds and epoll instances the Go
// runtime's netpoller asks for. Eventfds and epoll instances are real host
// objects owned by the tender, so readiness and blocking are the host
// kernel's; the guest only ever sees its own numbers.

const maxFDs = 1024

type fileKind int

const (
	fileNull fileKind = iota
	fileConsole
	fileEventfd
	fileEpoll
	filePipe
	fileBlock // sectors, by pread64/pwrite64
	fileTree  // a file or directory of the guest's tree (files.go); name is its guest path
)

type file struct {
	kind     fileKind
	host     int // host descriptor, or -1
	name     string
	sector   int64 // block: sector size
	size     int64 // block: bytes
	w        io.Writer
	nonblock bool
	cloexec  bool
	readable bool
	writable bool

	// Guarded by fdTable.mu: calls in flight on host, and whether the
	// guest has closed the descriptor. The host descriptor is closed when
	// both say so, by the last call out, as Linux keeps a file open for
	// the calls that still use it: closed at once, its number would go to
	// the next descriptor the tender makes (an eventfd, a thread's kick),
	// which a call still holding the old number would then read or write.
	refs   int
	closed bool
}

type fdTable struct {
	m     *machine
	mu    sync.Mutex
	files map[int]*file
}

func newFDTable(m *machine) *fdTable {
	return &fdTable{m: m, files: map[int]*file{
		0: {kind: fileNull, host: -1, readable: true},
		1: {kind: fileConsole, host: -1, w: m.stdout, writable: true},
		2: {kind: fileConsole, host: -1, w: m.guestErr, writable: true},
	}}
}

func (ft *fdTable) get(fd uint64) *file {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd > maxFDs {
		return nil
	}
	return ft.files[int(fd)]
}

// acquire is get for a call that uses the host descriptor: the file stays
// open until release, even if the guest closes fd meanwhile.
func (ft *fdTable) acquire(fd uint64) *file {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd > maxFDs {
		return nil
	}
	f := ft.files[int(fd)]
	if f != nil {
		f.refs++
	}
	return f
}

// release ends a call that acquired f.
func (ft *fdTable) release(f *file) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.closed && f.host >= 0 {
		unix.Close(f.host)
	}
}

// close removes fd from the table; its host descriptor goes with the last
// call that still uses it.
func (ft *fdTable) close(fd uint64) int64 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	f := ft.files[int(fd)]
	if fd > maxFDs || f == nil {
		return -int64(unix.EBADF)
	}
	ft.removeLocked(int(fd), f)
	return 0
}

// undo takes back descriptor fd that a failing call installed, if it still
// holds f: another guest thread may have closed it meanwhile and got the
// number for a file of its own.
func (ft *fdTable) undo(fd int64, f *file) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.files[int(fd)] == f {
		ft.removeLocked(int(fd), f)
	}
}

func (ft *fdTable) removeLocked(fd int, f *file) {
	delete(ft.files, fd)
	f.closed = true
	if f.refs == 0 && f.host >= 0 {
		unix.Close(f.host)
	}
}

// add installs f at the lowest free descriptor.
func (ft *fdTable) add(f *file) int64 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd := 0; fd < maxFDs; fd++ {
		if ft.files[fd] == nil {
			ft.files[fd] = f
			return int64(fd)
		}
	}
	if f.host >= 0 {
		unix.Close(f.host)
	}
	return -int64(unix.EMFILE)
}

func (ft *fdTable) closeAll() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd, f := range ft.files {
		if f.host >= 0 {
			unix.Close(f.host)
		}
		delete(ft.files, fd)
	}
}

// maxIO bounds one read or write, as Linux bounds them to 2 GiB.
const maxIO = 1 << 20

func sysRead(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if !f.readable {
		return -int64(unix.EBADF)
	}
	if f.kind == fileNull {
		return 0
	}
	if f.host < 0 {
		return -int64(unix.EINVAL)
	}
	// Straight into guest memory: a read that blocks holds no buffer.
	iov, err := t.m.mem.hostSlices(a.a[1], int(min(a.a[2], maxIO)), true)
	if err != nil {
		return errno(err)
	}
	if len(iov) == 0 {
		iov = [][]byte{nil}
	}
	n, res := t.hostIO(f, unix.POLLIN, func() (int, error) { return unix.Readv(f.host, iov) })
	if res != 0 {
		return res
	}
	return int64(n)
}

func sysWrite(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if !f.writable {
		return -int64(unix.EBADF)
	}
	// Straight from guest memory: a write that blocks (a pipe or a
	// console nobody reads) holds no copy. With copies, 1000 blocked
	// threads of a small guest held a gigabyte of the tender's memory.
	count := int(min(a.a[2], maxIO))
	iov, err := t.m.mem.hostSlices(a.a[1], count, false)
	if err != nil {
		return errno(err)
	}
	if f.kind == fileConsole {
		for _, b := range iov {
			if _, err := f.w.Write(b); err != nil {
				return -int64(unix.EIO)
			}
		}
		return int64(count)
	}
	if len(iov) == 0 {
		iov = [][]byte{nil}
	}
	n, res := t.hostIO(f, unix.POLLOUT, func() (int, error) { return unix.Writev(f.host, iov) })
	if res != 0 {
		return res
	}
	return int64(n)
}

// hostIO performs a read or write on a host-backed descriptor. Host
// descriptors are always non-blocking, so the tender's thread can be
// kicked; a descriptor the guest left blocking waits here for readiness.
func (t *thread) hostIO(f *file, ev int16, op func() (int, error)) (int, int64) {
	for {
		n, err := op()
		if err == unix.EAGAIN && !f.nonblock {
			if t.pollWait(f.host, ev, -1) {
				return 0, -int64(unix.EINTR)
			}
			continue
		}
		if err != nil {
			return 0, errno(err)
		}
		return n, 0
	}
}

func sysPipe2(t *thread, a *sysArgs) int64 {
	flags := int(a.a[1])
	if flags&^(unix.O_CLOEXEC|unix.O_NONBLOCK) != 0 {
		return -int64(unix.EINVAL)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return errno(err)
	}
	nb, ce := flags&unix.O_NONBLOCK != 0, flags&unix.O_CLOEXEC != 0
	rf := &file{kind: filePipe, host: p[0], nonblock: nb, cloexec: ce, readable: true}
	r := t.m.fds.add(rf)
	if r < 0 {
		unix.Close(p[1])
		return r
	}
	wf := &file{kind: filePipe, host: p[1], nonblock: nb, cloexec: ce, writable: true}
	w := t.m.fds.add(wf)
	if w < 0 {
		t.m.fds.undo(r, rf)
		return w
	}
	var b [8]byte
	le.PutUint32(b[0:], uint32(r))
	le.PutUint32(b[4:], uint32(w))
	if err := t.m.mem.copyOut(a.a[0], b[:]); err != nil {
		t.m.fds.undo(r, rf)
		t.m.fds.undo(w, wf)
		return errno(err)
	}
	return 0
}

// sysFstat answers fstat for the guest's descriptors, as Linux would for
// the objects they stand for: the console and standard input and pipes
// are FIFOs (what the guest reads and writes is a stream the tender
// relays), a block device a regular file of its size (programs fstat a
// file for its size), a NIC a character device, eventfds and epoll
// instances anonymous inodes (no file type bits). The owner is the user
// who ran mote, as getuid says; times are zero.
func sysFstat(t *thread, a *sysArgs) int64 {
	f := t.m.fds.get(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	if f.kind == fileTree {
		return t.statOut(f.host, a.a[1])
	}
	st := unix.Stat_t{
		Dev:     0x4d4f, // "MO": one device for the guest's objects
		Ino:     a.a[0] + 1,
		Nlink:   1,
		Uid:     uint32(os.Getuid()),
		Gid:     uint32(os.Getgid()),
		Blksize: 4096,
	}
	switch f.kind {
	case fileNull, fileConsole, filePipe:
		st.Mode = unix.S_IFIFO | 0o600
	case fileBlock:
		st.Mode = unix.S_IFREG | 0o600
		if !f.writable {
			st.Mode = unix.S_IFREG | 0o400
		}
		st.Size, st.Blksize, st.Blocks = f.size, f.sector, f.size/512
	default:
		st.Mode = 0o600
	}
	return copyStruct(t, &st, a.a[1])
}

// sysSockopt answers setsockopt and getsockopt: with success and no effect
// on abi.StackSocketFD (a socket of the guest's own stack, seen through
// its raw descriptor), ENOTSOCK on the guest's descriptors (none is a
// socket), EBADF otherwise.
func sysSockopt(t *thread, a *sysArgs) int64 {
	if a.a[0] == abi.StackSocketFD {
		return 0
	}
	if t.m.fds.get(a.a[0]) != nil {
		return -int64(unix.ENOTSOCK)
	}
	return -int64(unix.EBADF)
}

func sysClose(t *thread, a *sysArgs) int64 { return t.m.fds.close(a.a[0]) }

func sysFcntl(t *thread, a *sysArgs) int64 {
	f := t.m.fds.get(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	ft := t.m.fds
	ft.mu.Lock()
	defer ft.mu.Unlock()
	switch a.a[1] {
	case unix.F_GETFD:
		if f.cloexec {
			return unix.FD_CLOEXEC
		}
		return 0
	case unix.F_SETFD:
		f.cloexec = a.a[2]&unix.FD_CLOEXEC != 0
		return 0
	case unix.F_GETFL:
		fl := int64(unix.O_RDWR)
		switch {
		case f.readable && !f.writable:
			fl = unix.O_RDONLY
		case f.writable && !f.readable:
			fl = unix.O_WRONLY
		}
		if f.nonblock {
			fl |= unix.O_NONBLOCK
		}
		return fl
	case unix.F_SETFL:
		f.nonblock = a.a[2]&unix.O_NONBLOCK != 0
		return 0
	}
	return -int64(unix.EINVAL)
}

func sysEventfd2(t *thread, a *sysArgs) int64 {
	flags := int(a.a[1])
	if flags&^(unix.EFD_CLOEXEC|unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE) != 0 {
		return -int64(unix.EINVAL)
	}
	h, err := unix.Eventfd(uint(uint32(a.a[0])), flags&unix.EFD_SEMAPHORE|unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return errno(err)
	}
	return t.m.fds.add(&file{kind: fileEventfd, host: h, nonblock: flags&unix.EFD_NONBLOCK != 0,
		cloexec: flags&unix.EFD_CLOEXEC != 0, readable: true, writable: true})
}

func sysEpollCreate1(t *thread, a *sysArgs) int64 {
	if a.a[0]&^unix.EPOLL_CLOEXEC != 0 {
		return -int64(unix.EINVAL)
	}
	h, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return errno(err)
	}
	return t.m.fds.add(&file{kind: fileEpoll, host: h, cloexec: a.a[0] != 0})
}

func sysEpollCtl(t *thread, a *sysArgs) int64 {
	ep := t.m.fds.acquire(a.a[0])
	if ep == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(ep)
	target := t.m.fds.acquire(a.a[2])
	if target == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(target)
	if ep.kind != fileEpoll || ep == target {
		return -int64(unix.EINVAL)
	}
	if target.host < 0 || target.kind == fileEpoll || target.kind == fileBlock {
		return -int64(unix.EPERM) // as Linux says for a file that cannot be polled
	}
	// struct epoll_event is packed on x86-64: 4 bytes of events, 8 of data.
	var ev [12]byte
	op := int(a.a[1])
	if op != unix.EPOLL_CTL_DEL {
		if err := t.m.mem.copyIn(a.a[3], ev[:]); err != nil {
			return errno(err)
		}
		if le.Uint32(ev[0:])&unix.EPOLLEXCLUSIVE != 0 && op != unix.EPOLL_CTL_ADD {
			return -int64(unix.EINVAL)
		}
	}
	_, _, e := unix.Syscall6(unix.SYS_EPOLL_CTL, uintptr(ep.host), uintptr(op), uintptr(target.host),
		uintptr(unsafe.Pointer(&ev[0])), 0, 0)
	if e != 0 {
		return -int64(e)
	}
	return 0
}

func sysEpollPwait(t *thread, a *sysArgs) int64 {
	ep := t.m.fds.acquire(a.a[0])
	if ep == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(ep)
	if ep.kind != fileEpoll {
		return -int64(unix.EINVAL)
	}
	maxEvents := int(int32(a.a[2]))
	if maxEvents <= 0 || maxEvents > 1024 {
		return -int64(unix.EINVAL)
	}
	if a.a[4] != 0 {
		return -int64(unix.EINVAL) // a temporary signal mask is not part of the ABI
	}
	timeout := int(int32(a.a[3]))
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	buf := make([]byte, 12*maxEvents)
	for {
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_WAIT, uintptr(ep.host), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(maxEvents), 0, 0, 0)
		if e != 0 && e != unix.EINTR {
			return -int64(e)
		}
		if n := int(r); n > 0 {
			if err := t.m.mem.copyOut(a.a[1], buf[:12*n]); err != nil {
				return errno(err)
			}
			return int64(n)
		}
		wait := -1
		switch {
		case timeout == 0:
			return 0
		case timeout > 0:
			left := time.Until(deadline)
			if left <= 0 {
				return 0
			}
			wait = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if t.pollWait(ep.host, unix.POLLIN, wait) {
			return -int64(unix.EINTR)
		}
	}
}

// pollWait blocks until host descriptor fd has events, the timeout (in
// milliseconds, -1 for none) passes, or the thread is kicked; it reports
// whether it was kicked.
func (t *thread) pollWait(fd int, events int16, timeoutMs int) (kicked bool) {
	if t.interrupted() {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(t.kickFD), Events: unix.POLLIN}}
	var ts *unix.Timespec
	if timeoutMs >= 0 {
		v := unix.NsecToTimespec(int64(timeoutMs) * 1e6)
		ts = &v
	}
	_, err := unix.Ppoll(fds, ts, nil)
	if err == unix.EINTR {
		return t.interrupted()
	}
	return fds[1].Revents != 0
}

// Block devices: whole sectors inside the device, or nothing. A request
// that is misaligned or reaches past the end never gets to the host file.

// blockRange is what a call may touch of block device f: whole sectors
// inside it.
func blockRange(f *file, a *sysArgs, write bool) (n, off, res int64) {
	if f.kind != fileBlock {
		return 0, 0, -int64(unix.ESPIPE)
	}
	if write && !f.writable {
		return 0, 0, -int64(unix.EBADF)
	}
	count, off := int64(min(a.a[2], maxIO)), int64(a.a[3])
	if off < 0 || off%f.sector != 0 || count%f.sector != 0 {
		return 0, 0, -int64(unix.EINVAL)
	}
	if off > f.size {
		return 0, 0, -int64(unix.EINVAL)
	}
	return min(count, f.size-off), off, 0
}

// sysPread64 reads a file of the tree, or whole sectors of a block device.
func sysPread64(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind == fileTree {
		return t.treePread(f, a)
	}
	n, off, res := blockRange(f, a, false)
	if res != 0 {
		return res
	}
	buf := make([]byte, n)
	got, err := unix.Pread(f.host, buf, off)
	if err != nil {
		return errno(err)
	}
	if err := t.m.mem.copyOut(a.a[1], buf[:got]); err != nil {
		return errno(err)
	}
	return int64(got)
}

// sysPwrite64 writes a file of the tree, or whole sectors of a block
// device.
func sysPwrite64(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind == fileTree {
		return t.treePwrite(f, a)
	}
	n, off, res := blockRange(f, a, true)
	if res != 0 {
		return res
	}
	if n == 0 && a.a[2] > 0 {
		return -int64(unix.ENOSPC)
	}
	buf := make([]byte, n)
	if err := t.m.mem.copyIn(a.a[1], buf); err != nil {
		return errno(err)
	}
	got, err := unix.Pwrite(f.host, buf, off)
	if err != nil {
		return errno(err)
	}
	return int64(got)
}

func sysFdatasync(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind != fileBlock && f.kind != fileTree {
		return -int64(unix.EINVAL)
	}
	if err := unix.Fdatasync(f.host); err != nil {
		return errno(err)
	}
	return 0
}

// installDevices gives the guest its NICs and block devices as descriptors
// 3, 4, … and returns their manifest.
func (m *machine) installDevices() (*abi.Manifest, error) {
	man := &abi.Manifest{Version: abi.Version, Target: abi.TargetHVT}
	ft := m.fds
	next := 3
	for i, n := range m.cfg.NICs {
		d := n.NIC
		if err := unix.SetNonblock(n.HostFD, true); err != nil {
			return nil, fmt.Errorf("hvt: nic %s: %w", d.Name, err)
		}
		dev, err := m.ringNIC(i, n.HostFD, d.Name)
		if err != nil {
			return nil, err
		}
		d.FD, d.Ring, d.Kick = next, ringBase+uint64(i)*hugeSize, dev.bell
		g, err := unix.Dup(dev.Notify) // the guest may close its copy; the device keeps its own
		if err != nil {
			return nil, fmt.Errorf("hvt: nic %s: %w", d.Name, err)
		}
		unix.CloseOnExec(g)
		ft.files[next] = &file{kind: fileEventfd, host: g, name: d.Name, readable: true, writable: true}
		man.Net = append(man.Net, d)
		next++
	}
	for _, b := range m.cfg.Blocks {
		ss := b.SectorSize
		if ss == 0 {
			ss = 512
		}
		st, err := b.File.Stat()
		if err != nil {
			return nil, fmt.Errorf("hvt: block %s: %w", b.Name, err)
		}
		if st.Size()%int64(ss) != 0 {
			return nil, fmt.Errorf("hvt: block %s: %s is %d bytes, not a multiple of the %d-byte sector", b.Name, b.File.Name(), st.Size(), ss)
		}
		fd, err := unix.Dup(int(b.File.Fd()))
		if err != nil {
			return nil, fmt.Errorf("hvt: block %s: %w", b.Name, err)
		}
		unix.CloseOnExec(fd)
		ft.files[next] = &file{kind: fileBlock, host: fd, name: b.Name, sector: int64(ss), size: st.Size(), readable: true, writable: !b.ReadOnly}
		man.Block = append(man.Block, abi.Block{Name: b.Name, FD: next, SectorSize: ss, Sectors: st.Size() / int64(ss), ReadOnly: b.ReadOnly})
		next++
	}
	man.FS = append(man.FS, m.cfg.Trees...)
	if err := man.Validate(); err != nil {
		return nil, err
	}
	return man, nil
}
