package spt

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/vfs"
)

// The guest's file calls on spt: the filter sends every call that names a
// path to the supervisor, which resolves it in the guest's tree
// (host/vfs), opens the file itself and installs the descriptor in the
// guest (SECCOMP_IOCTL_NOTIF_ADDFD). Reads, writes, seeks and directory
// listings on that descriptor then go to the kernel directly. The guest
// never opens a path on the host.

// pathCalls are the calls the supervisor answers from the tree, and two
// whose answer must be the guest's, not the host's: uname and capget.
var pathCalls = map[int32]bool{
	unix.SYS_CAPGET: true, // pid may name any host process
	unix.SYS_OPENAT: true, unix.SYS_NEWFSTATAT: true, unix.SYS_FACCESSAT: true,
	unix.SYS_FACCESSAT2: true, unix.SYS_READLINKAT: true, unix.SYS_GETCWD: true,
	unix.SYS_UNAME:   true, // the guest's host name, not the host's
	unix.SYS_MKDIRAT: true, unix.SYS_UNLINKAT: true, unix.SYS_RENAMEAT: true,
	unix.SYS_RENAMEAT2: true, unix.SYS_FCHMODAT: true, unix.SYS_FCHMODAT2: true, unix.SYS_TRUNCATE: true,
	unix.SYS_STATFS: true, unix.SYS_SYMLINKAT: true, unix.SYS_LINKAT: true, unix.SYS_UTIMENSAT: true,
	unix.SYS_CHDIR: true, unix.SYS_FCHDIR: true, unix.SYS_FCHOWNAT: true, unix.SYS_FCHOWN: true,
}

// files serves pathCalls for one guest.
type files struct {
	fs  *vfs.FS // nil: no tree (every path is ENOENT)
	cwd string
}

const (
	ioctlNotifIDValid = 0x40082102
	ioctlNotifAddFD   = 0x40182103
	addFDFlagSend     = 1 << 1 // SECCOMP_ADDFD_FLAG_SEND: add and answer at once
)

type seccompNotifAddFD struct {
	ID         uint64
	Flags      uint32
	SrcFD      uint32
	NewFD      uint32
	NewFDFlags uint32
}

// serve answers req, a call in pathCalls, on the listener. It returns
// the call's result (a value or -errno) unless it answered itself.
func (f *files) serve(listener int, req *seccompNotif) (res int64, answered bool) {
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", req.Pid), os.O_RDWR, 0)
	if err != nil {
		return -int64(unix.ESRCH), false
	}
	defer mem.Close()
	// The memory file belongs to the calling thread only if the
	// notification is still pending: its pid was not reused meanwhile.
	id := req.ID
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifIDValid, uintptr(unsafe.Pointer(&id))); e != 0 {
		return -int64(unix.ESRCH), false
	}
	a := req.Args
	switch req.Nr {
	case unix.SYS_GETCWD:
		return f.getcwd(mem, a[0], a[1]), false
	case unix.SYS_UNAME:
		if _, err := mem.WriteAt(f.fs.Utsname(), int64(a[0])); err != nil {
			return -int64(unix.EFAULT), false
		}
		return 0, false
	case unix.SYS_FCHDIR:
		g, res := f.base(req.Pid, int32(a[0]), "relative")
		if res != 0 {
			return res, false
		}
		return f.chdir(g), false
	case unix.SYS_FCHOWN:
		return chownAllowed(a[1], a[2]), false
	case unix.SYS_CAPGET:
		return capget(mem, a[0], a[1], req.Pid), false
	}
	dirfd, pathArg := int32(a[0]), a[1]
	switch req.Nr {
	case unix.SYS_TRUNCATE, unix.SYS_STATFS, unix.SYS_CHDIR: // (path, …)
		dirfd, pathArg = unix.AT_FDCWD, a[0]
	case unix.SYS_SYMLINKAT: // (target, dirfd, path)
		dirfd, pathArg = int32(a[1]), a[2]
	case unix.SYS_UTIMENSAT:
		if a[1] == 0 {
			return -int64(unix.EINVAL), false // futimens: not by path
		}
	}
	p, gp, res := f.guestPath(mem, req.Pid, dirfd, pathArg)
	if res != 0 {
		return res, false
	}
	if f.fs == nil {
		return -int64(unix.ENOENT), false
	}
	switch req.Nr {
	case unix.SYS_MKDIRAT:
		return errno(f.fs.Mkdir(gp, uint32(a[2]))), false
	case unix.SYS_TRUNCATE:
		return errno(f.fs.Truncate(gp, int64(a[1]))), false
	case unix.SYS_CHDIR:
		return f.chdir(gp), false
	case unix.SYS_FCHOWNAT:
		if res := chownAllowed(a[2], a[3]); res != 0 {
			return res, false
		}
		_, err := f.fs.Stat(gp, a[4]&unix.AT_SYMLINK_NOFOLLOW == 0)
		return errno(err), false
	case unix.SYS_SYMLINKAT:
		target, err := readString(mem, a[0])
		if err != nil {
			return -int64(unix.EFAULT), false
		}
		return errno(f.fs.Symlink(target, gp)), false
	case unix.SYS_LINKAT:
		if a[4]&^uint64(unix.AT_SYMLINK_FOLLOW) != 0 {
			return -int64(unix.EINVAL), false
		}
		_, to, res := f.guestPath(mem, req.Pid, int32(a[2]), a[3])
		if res != 0 {
			return res, false
		}
		return errno(f.fs.Link(gp, to)), false
	case unix.SYS_UTIMENSAT:
		var ts []unix.Timespec
		if a[2] != 0 {
			var raw [2]unix.Timespec
			b := unsafe.Slice((*byte)(unsafe.Pointer(&raw)), unsafe.Sizeof(raw))
			if _, err := mem.ReadAt(b, int64(a[2])); err != nil {
				return -int64(unix.EFAULT), false
			}
			ts = raw[:]
		}
		return errno(f.fs.Utimes(gp, ts, a[3]&unix.AT_SYMLINK_NOFOLLOW != 0)), false
	case unix.SYS_STATFS:
		st, err := f.fs.Statfs(gp)
		if err != nil {
			return errno(err), false
		}
		return writeStruct(mem, &st, a[1]), false
	case unix.SYS_UNLINKAT:
		return errno(f.fs.Unlink(gp, int(a[2]))), false
	case unix.SYS_FCHMODAT:
		return errno(f.fs.Chmod(gp, uint32(a[2]), true)), false
	case unix.SYS_FCHMODAT2: // its flags may say AT_SYMLINK_NOFOLLOW (os.Root's Chmod)
		if a[3]&^unix.AT_SYMLINK_NOFOLLOW != 0 {
			return -int64(unix.EINVAL), false
		}
		return errno(f.fs.Chmod(gp, uint32(a[2]), a[3]&unix.AT_SYMLINK_NOFOLLOW == 0)), false
	case unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2:
		_, to, res := f.guestPath(mem, req.Pid, int32(a[2]), a[3])
		if res != 0 {
			return res, false
		}
		var flags uint
		if req.Nr == unix.SYS_RENAMEAT2 {
			flags = uint(a[4])
		}
		return errno(f.fs.Rename(gp, to, flags)), false
	case unix.SYS_OPENAT:
		file, err := f.fs.Open(gp, int(a[2]), uint32(a[3]))
		if err != nil {
			return errno(err), false
		}
		defer file.Close()
		add := seccompNotifAddFD{ID: req.ID, Flags: addFDFlagSend, SrcFD: uint32(file.Fd())}
		if a[2]&unix.O_CLOEXEC != 0 {
			add.NewFDFlags = unix.O_CLOEXEC
		}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), ioctlNotifAddFD, uintptr(unsafe.Pointer(&add))); e != 0 {
			return -int64(e), false
		}
		return 0, true
	case unix.SYS_NEWFSTATAT:
		if a[3]&unix.AT_EMPTY_PATH != 0 && p == "" {
			return -int64(unix.EACCES), false // a descriptor's stat: fstat is allowed
		}
		st, err := f.fs.Stat(gp, a[3]&unix.AT_SYMLINK_NOFOLLOW == 0)
		if err != nil {
			return errno(err), false
		}
		return writeStruct(mem, &st, a[2]), false
	case unix.SYS_FACCESSAT, unix.SYS_FACCESSAT2:
		return errno(f.fs.Access(gp, uint32(a[2]))), false
	case unix.SYS_READLINKAT:
		l, err := f.fs.Readlink(gp)
		if err != nil {
			return errno(err), false
		}
		b := []byte(l)
		if uint64(len(b)) > a[3] {
			b = b[:a[3]]
		}
		if _, err := mem.WriteAt(b, int64(a[2])); err != nil {
			return -int64(unix.EFAULT), false
		}
		return int64(len(b)), false
	}
	return -int64(unix.ENOSYS), false
}

// guestPath reads the path argument at va and makes it a guest path,
// relative ones taken from dirfd (base); it returns the path as the guest
// wrote it too.
func (f *files) guestPath(mem *os.File, pid uint32, dirfd int32, va uint64) (raw, gp string, res int64) {
	raw, err := readString(mem, va)
	if err != nil {
		return "", "", -int64(unix.EFAULT)
	}
	base, res := f.base(pid, dirfd, raw)
	if res != 0 {
		return "", "", res
	}
	gp, err = vfs.Clean(raw, base)
	if err != nil {
		return "", "", errno(err)
	}
	return raw, gp, 0
}

// writeStruct writes v, a plain C struct (struct stat, struct statfs),
// into the guest's memory at addr: 0, or EFAULT.
func writeStruct[T any](mem *os.File, v *T, addr uint64) int64 {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	if _, err := mem.WriteAt(b, int64(addr)); err != nil {
		return -int64(unix.EFAULT)
	}
	return 0
}

// base is the directory a relative path p is taken from: the working
// directory, or the guest path of the directory descriptor dirfd (what
// the kernel says of the guest's descriptor, mapped back into the tree).
func (f *files) base(pid uint32, dirfd int32, p string) (string, int64) {
	if p == "" || p[0] == '/' || dirfd == unix.AT_FDCWD {
		return f.cwd, 0
	}
	host, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, dirfd))
	if err != nil {
		return "", -int64(unix.EBADF)
	}
	if f.fs == nil {
		return "", -int64(unix.ENOTDIR)
	}
	g, ok := f.fs.GuestPath(host)
	if !ok {
		return "", -int64(unix.ENOTDIR) // not a directory of the tree
	}
	return g, 0
}

// chdir makes guest path p the working directory if it is a directory of
// the tree. The guest's relative paths all come here, so the kernel's own
// idea of the process's directory never matters.
func (f *files) chdir(p string) int64 {
	if f.fs == nil {
		return -int64(unix.ENOENT)
	}
	st, err := f.fs.Stat(p, true)
	if err != nil {
		return errno(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -int64(unix.ENOTDIR)
	}
	if p, err = f.fs.Resolve(p); err != nil { // what getcwd says: no link, no ".."
		return errno(err)
	}
	f.cwd = p
	return 0
}

// chownAllowed: the guest has one user; owner and group may only stay
// (-1) or be that user's, as for an unprivileged process (EPERM).
func chownAllowed(uid, gid uint64) int64 {
	u, g := int32(uid), int32(gid)
	if (u != -1 && int(u) != os.Getuid()) || (g != -1 && int(g) != os.Getgid()) {
		return -int64(unix.EPERM)
	}
	return 0
}

func (f *files) getcwd(mem *os.File, buf, size uint64) int64 {
	b := append([]byte(f.cwd), 0)
	if uint64(len(b)) > size {
		return -int64(unix.ERANGE)
	}
	if _, err := mem.WriteAt(b, int64(buf)); err != nil {
		return -int64(unix.EFAULT)
	}
	return int64(len(b))
}

// readString reads a NUL-terminated string of at most PATH_MAX bytes.
func readString(mem *os.File, addr uint64) (string, error) {
	buf := make([]byte, 4096)
	n, err := mem.ReadAt(buf, int64(addr))
	if n == 0 && err != nil {
		return "", err
	}
	for i := 0; i < n; i++ {
		if buf[i] == 0 {
			return string(buf[:i]), nil
		}
	}
	if n < len(buf) {
		return "", unix.EFAULT
	}
	return "", unix.ENAMETOOLONG
}

// errno is err as a negative errno result (0 for nil).
func errno(err error) int64 {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return -int64(e)
	}
	return -int64(unix.EIO)
}

// capget answers that the guest holds no capabilities, which is true:
// stage 2 dropped them (abi.Capget).
func capget(mem *os.File, hdrp, datap uint64, tid uint32) int64 {
	var hdr [8]byte
	if _, err := mem.ReadAt(hdr[:], int64(hdrp)); err != nil {
		return -int64(unix.EFAULT)
	}
	pid := int32(binary.LittleEndian.Uint32(hdr[4:]))
	self := pid > 0 && sameProcess(int(tid), int(pid))
	n, fix, e := abi.Capget(binary.LittleEndian.Uint32(hdr[0:]), pid, datap == 0, self)
	if fix {
		binary.LittleEndian.PutUint32(hdr[0:], unix.LINUX_CAPABILITY_VERSION_3)
		if _, err := mem.WriteAt(hdr[:4], int64(hdrp)); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	if e != 0 {
		return -int64(e)
	}
	if n > 0 {
		if _, err := mem.WriteAt(make([]byte, 12*n), int64(datap)); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	return 0
}

// sameProcess says whether pid is a thread of the process thread tid is in.
func sameProcess(tid, pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", tid, pid))
	return err == nil
}
