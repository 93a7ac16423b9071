package hvt

import (
	"os"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/vfs"
)

// The guest's files: the calls that name a path are resolved in the
// guest's tree (host/vfs, Config.Files); a file opened there is a host
// descriptor the tender reads, writes, seeks and lists for the guest
// (fileTree), as the spt supervisor installs the same descriptor in its
// guest.

const pathMax = 4096

// guestPath reads the path argument at va and makes it absolute: relative
// to dirfd when that is a directory of the tree, else to the working
// directory (AT_FDCWD).
func (t *thread) guestPath(dirfd int32, va uint64) (string, int64) {
	p, err := t.m.mem.readString(va, pathMax)
	if err != nil {
		if err == unix.ENAMETOOLONG {
			return "", -int64(unix.ENAMETOOLONG)
		}
		return "", -int64(unix.EFAULT)
	}
	base := t.m.cwd()
	if p != "" && p[0] != '/' && dirfd != unix.AT_FDCWD {
		f := t.m.fds.get(uint64(uint32(dirfd)))
		if f == nil {
			return "", -int64(unix.EBADF)
		}
		if f.kind != fileTree {
			return "", -int64(unix.ENOTDIR)
		}
		base = f.name
	}
	gp, err := vfs.Clean(p, base)
	if err != nil {
		return "", errno(err)
	}
	return gp, 0
}

// cwd is the guest's working directory: -w, then what chdir made it.
func (m *machine) cwd() string {
	if p := m.wd.Load(); p != nil {
		return *p
	}
	if m.cfg.Cwd == "" {
		return "/"
	}
	return path.Clean(m.cfg.Cwd)
}

// chdirTo makes guest path p the working directory if it is a directory
// of the tree.
func (t *thread) chdirTo(p string) int64 {
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	st, err := t.m.cfg.Files.Stat(p, true)
	if err != nil {
		return errno(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -int64(unix.ENOTDIR)
	}
	if p, err = t.m.cfg.Files.Resolve(p); err != nil { // what getcwd says: no link, no ".."
		return errno(err)
	}
	t.m.wd.Store(&p)
	return 0
}

func sysChdir(t *thread, a *sysArgs) int64 {
	p, res := t.guestPath(int32(unix.AT_FDCWD), a.a[0])
	if res != 0 {
		return res
	}
	return t.chdirTo(p)
}

func sysFchdir(t *thread, a *sysArgs) int64 {
	f := t.m.fds.get(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	if f.kind != fileTree {
		return -int64(unix.ENOTDIR)
	}
	return t.chdirTo(f.name)
}

// sysChown serves fchownat and fchown: the guest has one user, so owner
// and group may only be "unchanged" (-1) or that user's; anything else is
// EPERM, as for an unprivileged process.
func sysChown(t *thread, a *sysArgs) int64 {
	uid, gid := int32(a.a[1]), int32(a.a[2])
	if a.nr == unix.SYS_FCHOWNAT {
		uid, gid = int32(a.a[2]), int32(a.a[3])
	}
	if (uid != -1 && int(uid) != os.Getuid()) || (gid != -1 && int(gid) != os.Getgid()) {
		return -int64(unix.EPERM)
	}
	if a.nr == unix.SYS_FCHOWN {
		f := t.m.fds.get(a.a[0])
		if f == nil {
			return -int64(unix.EBADF)
		}
		return 0
	}
	nofollow := a.a[4]&unix.AT_SYMLINK_NOFOLLOW != 0
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, p string) error {
		_, err := fs.Stat(p, !nofollow)
		return err
	})
}

func sysOpenat(t *thread, a *sysArgs) int64 {
	gp, res := t.guestPath(int32(a.a[0]), a.a[1])
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	flags := int(a.a[2])
	osf, err := t.m.cfg.Files.Open(gp, flags, uint32(a.a[3]))
	if err != nil {
		return errno(err)
	}
	// The table owns a descriptor of its own, not the *os.File's.
	host, err := unix.FcntlInt(osf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	osf.Close()
	if err != nil {
		return errno(err)
	}
	// The name is what a call relative to this descriptor (and fchdir)
	// starts from: with ".." in it, the walk's own result.
	name := gp
	if strings.Contains(gp, "..") || strings.HasSuffix(gp, "/") || strings.HasSuffix(gp, "/.") {
		if r, err := t.m.cfg.Files.Resolve(gp); err == nil {
			name = r
		}
	}
	acc := flags & unix.O_ACCMODE
	f := &file{kind: fileTree, host: host, name: name,
		nonblock: flags&unix.O_NONBLOCK != 0, cloexec: flags&unix.O_CLOEXEC != 0,
		readable: flags&unix.O_PATH == 0 && (acc == unix.O_RDONLY || acc == unix.O_RDWR),
		writable: flags&unix.O_PATH == 0 && (acc == unix.O_WRONLY || acc == unix.O_RDWR),
	}
	fd := t.m.fds.add(f)
	if fd < 0 {
		unix.Close(host)
	}
	return fd
}

func sysNewfstatat(t *thread, a *sysArgs) int64 {
	flags := int(a.a[3])
	if flags&unix.AT_EMPTY_PATH != 0 {
		if p, err := t.m.mem.readString(a.a[1], 1); err == nil && p == "" {
			return sysFstat(t, &sysArgs{a: [6]uint64{uint64(uint32(int32(a.a[0]))), a.a[2]}})
		}
	}
	gp, res := t.guestPath(int32(a.a[0]), a.a[1])
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	st, err := t.m.cfg.Files.Stat(gp, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if err != nil {
		return errno(err)
	}
	return copyStruct(t, &st, a.a[2])
}

// statOut writes fstat(host) to the guest at va.
func (t *thread) statOut(host int, va uint64) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(host, &st); err != nil {
		return errno(err)
	}
	return copyStruct(t, &st, va)
}

// copyStruct writes v, a plain C struct (struct stat, struct statfs), to
// the guest at va: 0, or EFAULT.
func copyStruct[T any](t *thread, v *T, va uint64) int64 {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	if err := t.m.mem.copyOut(va, b); err != nil {
		return -int64(unix.EFAULT)
	}
	return 0
}

func sysFaccessat(t *thread, a *sysArgs) int64 {
	gp, res := t.guestPath(int32(a.a[0]), a.a[1])
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	if err := t.m.cfg.Files.Access(gp, uint32(a.a[2])); err != nil {
		return errno(err)
	}
	return 0
}

func sysReadlinkat(t *thread, a *sysArgs) int64 {
	gp, res := t.guestPath(int32(a.a[0]), a.a[1])
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	l, err := t.m.cfg.Files.Readlink(gp)
	if err != nil {
		return errno(err)
	}
	b := []byte(l)
	if uint64(len(b)) > a.a[3] {
		b = b[:a.a[3]]
	}
	if err := t.m.mem.copyOut(a.a[2], b); err != nil {
		return -int64(unix.EFAULT)
	}
	return int64(len(b))
}

func sysGetcwd(t *thread, a *sysArgs) int64 {
	b := append([]byte(t.m.cwd()), 0)
	if uint64(len(b)) > a.a[1] {
		return -int64(unix.ERANGE)
	}
	if err := t.m.mem.copyOut(a.a[0], b); err != nil {
		return -int64(unix.EFAULT)
	}
	return int64(len(b))
}

// sysLseek seeks a file of the tree; every other descriptor is a stream
// (console, pipe, eventfd, NIC) or a block device read by offset: ESPIPE,
// as Linux says for a pipe.
func sysLseek(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind != fileTree {
		return -int64(unix.ESPIPE)
	}
	off, err := unix.Seek(f.host, int64(a.a[1]), int(a.a[2]))
	if err != nil {
		return errno(err)
	}
	return off
}

func sysGetdents64(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind != fileTree {
		return -int64(unix.ENOTDIR)
	}
	buf := make([]byte, min(a.a[2], maxIO))
	n, err := unix.Getdents(f.host, buf)
	if err != nil {
		return errno(err)
	}
	if err := t.m.mem.copyOut(a.a[1], buf[:n]); err != nil {
		return -int64(unix.EFAULT)
	}
	return int64(n)
}

// treePread and treePwrite are pread64 and pwrite64 on a file of the tree.
func (t *thread) treePread(f *file, a *sysArgs) int64 {
	if !f.readable {
		return -int64(unix.EBADF)
	}
	buf := make([]byte, min(a.a[2], maxIO))
	n, err := unix.Pread(f.host, buf, int64(a.a[3]))
	if err != nil {
		return errno(err)
	}
	if err := t.m.mem.copyOut(a.a[1], buf[:n]); err != nil {
		return -int64(unix.EFAULT)
	}
	return int64(n)
}

func (t *thread) treePwrite(f *file, a *sysArgs) int64 {
	if !f.writable {
		return -int64(unix.EBADF)
	}
	buf := make([]byte, min(a.a[2], maxIO))
	if err := t.m.mem.copyIn(a.a[1], buf); err != nil {
		return -int64(unix.EFAULT)
	}
	n, err := unix.Pwrite(f.host, buf, int64(a.a[3]))
	if err != nil {
		return errno(err)
	}
	return int64(n)
}

// treeCall resolves the path at argument i (with its dirfd before it)
// and runs op on the guest's tree.
func (t *thread) treeCall(dirfd, va uint64, op func(fs *vfs.FS, p string) error) int64 {
	gp, res := t.guestPath(int32(dirfd), va)
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	if err := op(t.m.cfg.Files, gp); err != nil {
		return errno(err)
	}
	return 0
}

func sysMkdirat(t *thread, a *sysArgs) int64 {
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, p string) error { return fs.Mkdir(p, uint32(a.a[2])) })
}

func sysUnlinkat(t *thread, a *sysArgs) int64 {
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, p string) error { return fs.Unlink(p, int(a.a[2])) })
}

// sysFchmodat serves fchmodat and fchmodat2 (whose flags, in a.a[3], may
// say AT_SYMLINK_NOFOLLOW, what os.Root's Chmod asks).
func sysFchmodat(t *thread, a *sysArgs) int64 {
	follow := true
	if a.nr == unix.SYS_FCHMODAT2 {
		if a.a[3]&^unix.AT_SYMLINK_NOFOLLOW != 0 {
			return -int64(unix.EINVAL)
		}
		follow = a.a[3]&unix.AT_SYMLINK_NOFOLLOW == 0
	}
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, p string) error { return fs.Chmod(p, uint32(a.a[2]), follow) })
}

// sysRenameat serves renameat and renameat2 (whose flags are in a.a[4]).
func sysRenameat(t *thread, a *sysArgs) int64 {
	to, res := t.guestPath(int32(a.a[2]), a.a[3])
	if res != 0 {
		return res
	}
	var flags uint
	if a.nr == unix.SYS_RENAMEAT2 {
		flags = uint(a.a[4])
	}
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, from string) error { return fs.Rename(from, to, flags) })
}

// sysFdOp serves ftruncate and fchmod on a file of the tree.
func sysFdOp(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind != fileTree {
		return -int64(unix.EINVAL)
	}
	var err error
	if a.nr == unix.SYS_FTRUNCATE {
		if !f.writable {
			return -int64(unix.EINVAL) // as Linux says for a descriptor not open for writing
		}
		err = unix.Ftruncate(f.host, int64(a.a[1]))
	} else {
		err = unix.Fchmod(f.host, uint32(a.a[1]))
	}
	if err != nil {
		return errno(err)
	}
	return 0
}

func sysTruncate(t *thread, a *sysArgs) int64 {
	return t.treeCall(atFDCWD, a.a[0], func(fs *vfs.FS, p string) error { return fs.Truncate(p, int64(a.a[1])) })
}

// atFDCWD is AT_FDCWD as a system call's 64-bit argument.
const atFDCWD = uint64(1<<64 + unix.AT_FDCWD)

func sysStatfs(t *thread, a *sysArgs) int64 {
	gp, res := t.guestPath(int32(unix.AT_FDCWD), a.a[0])
	if res != 0 {
		return res
	}
	if t.m.cfg.Files == nil {
		return -int64(unix.ENOENT)
	}
	st, err := t.m.cfg.Files.Statfs(gp)
	if err != nil {
		return errno(err)
	}
	return copyStruct(t, &st, a.a[1])
}

func sysFstatfs(t *thread, a *sysArgs) int64 {
	f := t.m.fds.acquire(a.a[0])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	var st unix.Statfs_t
	if f.kind == fileTree {
		if err := unix.Fstatfs(f.host, &st); err != nil {
			return errno(err)
		}
	} else {
		st.Type, st.Bsize, st.Frsize, st.Namelen = 0x50495045, 4096, 4096, 255 // PIPEFS_MAGIC
	}
	return copyStruct(t, &st, a.a[1])
}

// sysIoctl answers every request with ENOTTY: no descriptor of the guest
// is a terminal (a program asking whether its output is one, as loggers
// do, gets Linux's answer for a pipe), and no other device takes ioctls.
func sysIoctl(t *thread, a *sysArgs) int64 {
	if t.m.fds.get(a.a[0]) == nil {
		return -int64(unix.EBADF)
	}
	return -int64(unix.ENOTTY)
}

// mmapFile maps a file of the tree privately (MAP_PRIVATE): fresh
// anonymous memory, counted against the guest's, filled with the file's
// bytes from the offset on and zeros past its end. Writes stay in the
// guest, as with a private mapping; unlike Linux, the file's later changes
// are not seen through pages the guest has not written. A shared mapping,
// or one of any other descriptor, is refused (ENODEV), as are block
// devices: their bounds are kept by pread64 and pwrite64.
func (t *thread) mmapFile(a *sysArgs) int64 {
	length, prot, flags, off := a.a[1], int(a.a[2]), int(a.a[3]), int64(a.a[5])
	f := t.m.fds.acquire(a.a[4])
	if f == nil {
		return -int64(unix.EBADF)
	}
	defer t.m.fds.release(f)
	if f.kind != fileTree || flags&(unix.MAP_SHARED|unix.MAP_PRIVATE) != unix.MAP_PRIVATE {
		return -int64(unix.ENODEV)
	}
	if !f.readable {
		return -int64(unix.EACCES)
	}
	if off < 0 || off&(pageSize-1) != 0 {
		return -int64(unix.EINVAL)
	}
	anon := *a
	anon.a[2] = uint64(prot | unix.PROT_READ | unix.PROT_WRITE)
	anon.a[3] = uint64(flags | unix.MAP_ANONYMOUS)
	addr := sysMmap(t, &anon)
	if addr < 0 {
		return addr
	}
	fail := func(res int64) int64 {
		sysMunmap(t, &sysArgs{nr: unix.SYS_MUNMAP, a: [6]uint64{uint64(addr), length}})
		return res
	}
	buf := make([]byte, min(length, maxIO))
	for done := uint64(0); done < length; {
		n, err := unix.Pread(f.host, buf[:min(uint64(len(buf)), length-done)], off+int64(done))
		if err != nil {
			return fail(errno(err))
		}
		if n == 0 {
			break // past the end: zeros
		}
		if err := t.m.mem.copyOut(uint64(addr)+done, buf[:n]); err != nil {
			return fail(errno(err))
		}
		done += uint64(n)
	}
	if prot&unix.PROT_WRITE == 0 {
		if res := sysMprotect(t, &sysArgs{nr: unix.SYS_MPROTECT, a: [6]uint64{uint64(addr), length, uint64(prot)}}); res != 0 {
			return fail(res)
		}
	}
	return addr
}

func sysSymlinkat(t *thread, a *sysArgs) int64 {
	target, err := t.m.mem.readString(a.a[0], pathMax)
	if err != nil {
		return -int64(unix.EFAULT)
	}
	return t.treeCall(a.a[1], a.a[2], func(fs *vfs.FS, p string) error { return fs.Symlink(target, p) })
}

func sysLinkat(t *thread, a *sysArgs) int64 {
	if a.a[4]&^uint64(unix.AT_SYMLINK_FOLLOW) != 0 {
		return -int64(unix.EINVAL)
	}
	to, res := t.guestPath(int32(a.a[2]), a.a[3])
	if res != 0 {
		return res
	}
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, from string) error { return fs.Link(from, to) })
}

// sysUtimensat changes a path's times (a NULL path, futimens, is
// refused: EINVAL).
func sysUtimensat(t *thread, a *sysArgs) int64 {
	if a.a[1] == 0 {
		return -int64(unix.EINVAL)
	}
	var ts []unix.Timespec
	if a.a[2] != 0 {
		b := make([]byte, 32)
		if err := t.m.mem.copyIn(a.a[2], b); err != nil {
			return -int64(unix.EFAULT)
		}
		ts = []unix.Timespec{
			{Sec: int64(le.Uint64(b[0:])), Nsec: int64(le.Uint64(b[8:]))},
			{Sec: int64(le.Uint64(b[16:])), Nsec: int64(le.Uint64(b[24:]))},
		}
	}
	nofollow := a.a[3]&unix.AT_SYMLINK_NOFOLLOW != 0
	return t.treeCall(a.a[0], a.a[1], func(fs *vfs.FS, p string) error { return fs.Utimes(p, ts, nofollow) })
}
