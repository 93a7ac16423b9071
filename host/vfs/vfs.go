package vfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Mount is a host directory seen at a guest path.
type Mount struct {
	Guest    string // absolute guest path
	Host     string // host directory
	ReadOnly bool
}

// Config describes a guest's tree.
type Config struct {
	Mounts   []Mount
	Hostname string   // /etc/hostname and /etc/hosts ("mote" if empty)
	DNS      []string // nameservers for /etc/resolv.conf
	UID, GID int      // the one user of /etc/passwd and /etc/group
	Home     string   // that user's home directory in /etc/passwd ("/" if empty)
	User     string   // its name
	// Executable is what /proc/self/exe names (os.Executable), or "".
	// Nothing is at that path: the image is not in the guest's tree.
	Executable string
}

// FS is a guest's file tree. Its methods are safe for concurrent use.
type FS struct {
	host   string
	mounts []mount           // longest guest path first
	files  map[string][]byte // made files, read-only
	devs   map[string]bool   // host devices passed through
	// skel is a host directory with the made directories' entries (as
	// empty files and directories), so that the guest can list and walk
	// them: "", until the first made directory is opened.
	skel     string
	skelOnce sync.Once
	skelErr  error
	dirs     map[string]bool // directories that exist only as parents
	exe      string          // Config.Executable
}

type mount struct {
	host  string // the directory's real path, for GuestPath
	guest string
	root  *os.File // O_PATH descriptor of the host directory
	ro    bool
}

// New checks the mounts (each source must be a directory) and makes the
// /etc files. The caller closes the FS when the guest is gone.
func New(cfg Config) (*FS, error) {
	fs := &FS{files: map[string][]byte{}, devs: map[string]bool{}, dirs: map[string]bool{"/": true}, exe: cfg.Executable}
	for _, m := range cfg.Mounts {
		g := path.Clean(m.Guest)
		if !path.IsAbs(m.Guest) || g == "/" {
			fs.Close()
			return nil, fmt.Errorf("mount %s: the guest path must be absolute and not /", m.Guest)
		}
		fd, err := unix.Open(m.Host, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fs.Close()
			return nil, fmt.Errorf("mount %s:%s: %w", m.Host, m.Guest, &os.PathError{Op: "open", Path: m.Host, Err: err})
		}
		real, err := filepath.EvalSymlinks(m.Host)
		if err != nil {
			real = m.Host
		}
		fs.mounts = append(fs.mounts, mount{host: filepath.Clean(real), guest: g, root: os.NewFile(uintptr(fd), m.Host), ro: m.ReadOnly})
		fs.addParents(g)
	}
	sort.SliceStable(fs.mounts, func(i, j int) bool { return len(fs.mounts[i].guest) > len(fs.mounts[j].guest) })
	host := cfg.Hostname
	if host == "" {
		host = "mote"
	}
	fs.host = host
	user := cfg.User
	if user == "" {
		user = "mote"
	}
	home := cfg.Home
	if home == "" {
		home = "/"
	}
	var resolv strings.Builder
	for _, d := range cfg.DNS {
		fmt.Fprintf(&resolv, "nameserver %s\n", d)
	}
	for name, body := range map[string]string{
		"/etc/hosts":    fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", host),
		"/etc/hostname": host + "\n",
		// os.Hostname reads it before it asks uname.
		"/proc/sys/kernel/hostname": host + "\n",
		"/etc/resolv.conf":          resolv.String(),
		"/etc/passwd":               fmt.Sprintf("%s:x:%d:%d:%s:%s:/nonexistent\n", user, cfg.UID, cfg.GID, user, home),
		"/etc/group":                fmt.Sprintf("%s:x:%d:\n", user, cfg.GID),
	} {
		if fs.mountOf(name) == nil { // a mount over /etc wins
			fs.files[name] = []byte(body)
			fs.addParents(name)
		}
	}
	for _, d := range devices {
		if fs.mountOf(d) == nil {
			fs.devs[d] = true
			fs.addParents(d)
		}
	}
	return fs, nil
}

// devices are the host's character devices a guest may open: they hold
// nothing of the host's (/dev/null discards and reads empty, /dev/zero
// reads zeros, the random devices read the host's CSPRNG).
var devices = []string{"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"}

func (fs *FS) addParents(p string) {
	for d := path.Dir(p); ; d = path.Dir(d) {
		fs.dirs[d] = true
		if d == "/" {
			return
		}
	}
}

// Close releases the mounts' descriptors.
func (fs *FS) Close() {
	for _, m := range fs.mounts {
		m.root.Close()
	}
	if fs.skel != "" {
		os.RemoveAll(fs.skel)
	}
}

// skeleton makes fs.skel once: every made directory as a directory, the
// names in it (made files, devices, mount points) as empty entries.
func (fs *FS) skeleton() (string, error) {
	fs.skelOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mote-tree-")
		if err != nil {
			fs.skelErr = err
			return
		}
		fs.skel = dir
		for d := range fs.dirs {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				fs.skelErr = err
				return
			}
		}
		var names []string
		for f := range fs.files {
			names = append(names, f)
		}
		for d := range fs.devs {
			names = append(names, d)
		}
		for _, f := range names {
			os.WriteFile(filepath.Join(dir, f), nil, 0o444)
		}
		for _, m := range fs.mounts {
			os.MkdirAll(filepath.Join(dir, m.guest), 0o755)
		}
	})
	return fs.skel, fs.skelErr
}

// mountOf returns the mount holding guest path p, nil if none.
func (fs *FS) mountOf(p string) *mount {
	for i := range fs.mounts {
		m := &fs.mounts[i]
		if p == m.guest || strings.HasPrefix(p, m.guest+"/") {
			return m
		}
	}
	return nil
}

// onTheWay says whether a mount lies beneath guest path p: p is then a
// directory on the way to it, whatever the tree holding p says, as a
// mount point's parents are there on Linux (-v /tmp/x/y inside the
// guest's own /tmp).
func (fs *FS) onTheWay(p string) bool {
	for i := range fs.mounts {
		if strings.HasPrefix(fs.mounts[i].guest, p+"/") {
			return true
		}
	}
	return false
}

// GuestPath maps a host path inside a mount (what /proc/PID/fd/N says of
// a descriptor the guest holds) back to the guest path it has there.
func (fs *FS) GuestPath(host string) (string, bool) {
	host = filepath.Clean(host)
	if fs.skel != "" {
		if host == fs.skel {
			return "/", true
		}
		if rest, ok := strings.CutPrefix(host, fs.skel+"/"); ok && fs.dirs["/"+rest] {
			return "/" + rest, true
		}
	}
	for _, m := range fs.mounts {
		if host == m.host {
			return m.guest, true
		}
		if rest, ok := strings.CutPrefix(host, m.host+"/"); ok {
			return path.Join(m.guest, rest), true
		}
	}
	return "", false
}

// maxPath is Linux's PATH_MAX.
const maxPath = 4096

// Clean makes a guest path absolute (relative ones are taken from cwd),
// without "." elements or repeated slashes, or says why it is not a path.
// It keeps ".." and a trailing slash, which only a walk can judge, as
// Linux does: ".." after a link is the parent of the link's target, and
// "file/" is not a directory (resolve).
func Clean(p, cwd string) (string, error) {
	if p == "" {
		return "", unix.ENOENT
	}
	if len(p) >= maxPath {
		return "", unix.ENAMETOOLONG
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", unix.EINVAL
	}
	if !path.IsAbs(p) {
		p = cwd + "/" + p
	}
	trimmed := strings.TrimRight(p, "/")
	dir, dot := strings.HasSuffix(p, "/"), trimmed == "." || strings.HasSuffix(trimmed, "/.")
	var b strings.Builder
	for _, e := range strings.Split(p, "/") {
		if e != "" && e != "." {
			b.WriteString("/")
			b.WriteString(e)
		}
	}
	out := b.String()
	switch {
	case out == "":
		out = "/"
	case dot:
		out += "/." // "a/." names no entry of a's directory (rmdir: EINVAL)
	case dir:
		out += "/"
	}
	return out, nil
}

// writeFlags are the open flags that write or may create.
const writeFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND

// Open opens the guest path p (absolute, clean) with open(2)'s flags and
// mode, and returns a host descriptor for it. Errors are errnos.
func (fs *FS) Open(p string, flags int, mode uint32) (*os.File, error) {
	// O_CREAT|O_EXCL never follows a link in the last element (EEXIST).
	excl := flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL
	p, err := fs.resolve(p, flags&unix.O_NOFOLLOW == 0 && !excl)
	if err != nil {
		return nil, err
	}
	if excl {
		flags |= unix.O_NOFOLLOW
	}
	if m := fs.mountOf(p); m != nil {
		if m.ro && flags&writeFlags != 0 {
			return nil, unix.EROFS
		}
		return m.openFile(p, flags, mode)
	}
	if fs.devs[p] {
		fd, err := unix.Open(p, flags&(unix.O_ACCMODE|unix.O_NONBLOCK)|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), p), nil
	}
	if body, ok := fs.files[p]; ok {
		if flags&writeFlags != 0 {
			return nil, unix.EROFS
		}
		if flags&unix.O_DIRECTORY != 0 {
			return nil, unix.ENOTDIR
		}
		return sealed(path.Base(p), body)
	}
	if fs.dirs[p] {
		if flags&writeFlags != 0 {
			return nil, unix.EISDIR
		}
		// Listed from the skeleton: names only, read-only.
		skel, err := fs.skeleton()
		if err != nil {
			return nil, err
		}
		fd, err := unix.Open(filepath.Join(skel, p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), p), nil
	}
	if flags&unix.O_CREAT != 0 {
		return nil, unix.EROFS // outside every mount nothing can be made
	}
	return nil, unix.ENOENT
}

// openFile opens p in m for the guest, as mounts with nodev do: a device
// node (a host's disk, a terminal) is refused with EACCES. The open itself
// never blocks the host side (a FIFO waiting for a writer would hang the
// tender's thread or spt's supervisor): it is made non-blocking, and the
// descriptor is set back to what the guest asked.
func (m *mount) openFile(p string, flags int, mode uint32) (*os.File, error) {
	f, err := m.open(p, flags&^unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, mode, flags&unix.O_NOFOLLOW != 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFCHR || t == unix.S_IFBLK {
		f.Close()
		return nil, unix.EACCES
	}
	if flags&unix.O_NONBLOCK == 0 && flags&unix.O_PATH == 0 {
		if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// open resolves p beneath the mount's root on the host.
func (m *mount) open(p string, flags int, mode uint32, nofollow bool) (*os.File, error) {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, m.guest), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags: uint64(flags),
		// The guest's tree resolves links itself (resolve): the kernel
		// walks a path with none, beneath the mount's root.
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS,
	}
	if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE {
		how.Mode = uint64(mode & 0o7777)
	}
	if nofollow {
		how.Flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat2(int(m.root.Fd()), rel, &how)
	if err != nil {
		if errors.Is(err, unix.EXDEV) {
			return nil, unix.EACCES // a walk that would leave the mount
		}
		if errors.Is(err, unix.ELOOP) && !nofollow {
			return nil, unix.ELOOP // a link appeared since resolve: refused
		}
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// maxLinks is how many symbolic links one lookup follows (Linux's 40).
const maxLinks = 40

// resolve walks guest path p (absolute, from Clean) element by element
// and returns the path it names with no link, "." or ".." in it, as Linux
// walks it in a container: a link's absolute target starts again from the
// guest's /, a relative one from the link's directory, and ".." is the
// parent of the directory reached so far (so "link/.." is the parent of
// the link's target, not the link's directory). The last element is
// followed only if followLast or p ends in a slash, which also asks for a
// directory (ENOTDIR otherwise). Each element is looked at beneath its
// mount's root with no link followed by the kernel, so a link can lead
// anywhere in the guest's tree and never outside it. A missing last
// element is returned (to be created, or ENOENT for the caller to see); a
// missing or non-directory element before it is ENOENT or ENOTDIR.
func (fs *FS) resolve(p string, followLast bool) (string, error) {
	mustDir := len(p) > 1 && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/."))
	followLast = followLast || mustDir
	todo := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	cur := "/"
	links := 0
	for len(todo) > 0 {
		e := todo[0]
		todo = todo[1:]
		if e == "." {
			continue
		}
		if e == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, e)
		last := len(todo) == 0
		m := fs.mountOf(next)
		if m == nil || fs.onTheWay(next) { // the made tree and a mount's parents have no links
			if _, ok := fs.files[next]; ok && !last {
				return "", unix.ENOTDIR
			}
			cur = next
			continue
		}
		if last && !followLast {
			cur = next
			break
		}
		f, err := m.open(next, unix.O_PATH|unix.O_CLOEXEC, 0, true)
		if err != nil {
			if !last {
				return "", err
			}
			cur = next // missing: to be created, or ENOENT for the caller
			break
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			f.Close()
			if err == nil && !last && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return "", unix.ENOTDIR
			}
			cur = next
			continue
		}
		buf := make([]byte, maxPath)
		n, err := unix.Readlinkat(int(f.Fd()), "", buf)
		f.Close()
		if err != nil {
			return "", err
		}
		if links++; links > maxLinks {
			return "", unix.ELOOP
		}
		target := string(buf[:n])
		if path.IsAbs(target) {
			cur = "/"
		}
		if last && (strings.HasSuffix(target, "/") || strings.HasSuffix(target, "/.")) {
			mustDir = true // "file/" in a link's target is no more a directory
		}
		todo = append(strings.FieldsFunc(target, func(r rune) bool { return r == '/' }), todo...)
	}
	if mustDir {
		if st, err := fs.Stat(cur, true); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return "", unix.ENOTDIR
		}
	}
	return cur, nil
}

// Resolve is the path guest path p names, with every link followed: what
// a working directory or a directory descriptor is remembered by.
func (fs *FS) Resolve(p string) (string, error) { return fs.resolve(p, true) }

// sealed returns a read-only descriptor of a memory file holding body.
func sealed(name string, body []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(body); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, err
	}
	// A read-only descriptor of the same file, at offset 0.
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(ro), name), nil
}

// Stat is stat(2) of guest path p: lstat when follow is false.
func (fs *FS) Stat(p string, follow bool) (unix.Stat_t, error) {
	var st unix.Stat_t
	p, err := fs.resolve(p, follow)
	if err != nil {
		return st, err
	}
	if m := fs.mountOf(p); m != nil {
		flags := unix.O_PATH | unix.O_CLOEXEC
		f, err := m.open(p, flags, 0, !follow)
		if err != nil {
			return st, err
		}
		defer f.Close()
		err = unix.Fstat(int(f.Fd()), &st)
		return st, err
	}
	if body, ok := fs.files[p]; ok {
		st.Mode, st.Size, st.Nlink, st.Blksize = unix.S_IFREG|0o444, int64(len(body)), 1, 4096
		return st, nil
	}
	if fs.devs[p] {
		err := unix.Stat(p, &st)
		return st, err
	}
	if fs.dirs[p] {
		st.Mode, st.Nlink, st.Blksize = unix.S_IFDIR|0o555, 2, 4096
		return st, nil
	}
	return st, unix.ENOENT
}

// Readlink is readlink(2) of guest path p.
func (fs *FS) Readlink(p string) (string, error) {
	if c := path.Clean(p); fs.exe != "" && (c == "/proc/self/exe" || c == "/proc/1/exe" || c == "/proc/thread-self/exe") {
		return fs.exe, nil // the guest is pid 1
	}
	p, err := fs.resolve(p, false)
	if err != nil {
		return "", err
	}
	m := fs.mountOf(p)
	if m == nil {
		if _, err := fs.Stat(p, false); err != nil {
			return "", err
		}
		return "", unix.EINVAL // not a link
	}
	f, err := m.open(p, unix.O_PATH|unix.O_CLOEXEC, 0, true)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxPath)
	n, err := unix.Readlinkat(int(f.Fd()), "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Access is faccessat(2) of guest path p for mode (R_OK, W_OK, X_OK, or
// F_OK): the host decides for mounted files, a read-only mount refuses
// W_OK with EROFS, made files are readable only.
func (fs *FS) Access(p string, mode uint32) error {
	p, err := fs.resolve(p, true)
	if err != nil {
		return err
	}
	if m := fs.mountOf(p); m != nil {
		if m.ro && mode&unix.W_OK != 0 {
			if _, err := fs.Stat(p, true); err != nil {
				return err
			}
			return unix.EROFS
		}
		f, err := m.open(p, unix.O_PATH|unix.O_CLOEXEC, 0, false)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Faccessat(int(f.Fd()), "", mode, unix.AT_EMPTY_PATH)
	}
	if _, err := fs.Stat(p, true); err != nil {
		return err
	}
	if mode&(unix.W_OK|unix.X_OK) != 0 {
		if fs.dirs[p] && mode&unix.W_OK == 0 {
			return nil // a made directory can be searched
		}
		return unix.EACCES
	}
	return nil
}

// Utsname is struct utsname as uname(2) gives it to the guest: the
// kernel's name and version are Mote's, the node name is the tree's host
// name (as /etc/hostname says), never the host's.
func (fs *FS) Utsname() []byte {
	host := "mote"
	if fs != nil {
		host = fs.host
	}
	buf := make([]byte, 6*65)
	for i, s := range []string{"Linux", host, "6.1.0-mote", "#1 Mote", "x86_64", "(none)"} {
		copy(buf[i*65:i*65+64], s)
	}
	return buf
}

// parent resolves the directory that holds guest path p, in p's mount,
// and returns it with p's last element. Paths outside every mount are
// read-only: made files and directories cannot change. A last element of
// "." or ".." names no entry a call could change: EINVAL. A trailing slash
// asks for a directory.
func (fs *FS) parent(p string) (*mount, *os.File, string, error) {
	dirOnly := len(p) > 1 && strings.HasSuffix(p, "/")
	p = strings.TrimRight(p, "/")
	if p == "" {
		p = "/"
	}
	if p != "/" {
		i := strings.LastIndexByte(p, '/')
		base := p[i+1:]
		if base == "." || base == ".." {
			return nil, nil, "", unix.EINVAL
		}
		dir, err := fs.resolve(p[:i+1], true)
		if err != nil {
			return nil, nil, "", err
		}
		p = path.Join(dir, base)
		if dirOnly { // the entry itself must be a directory: a link is not
			if st, err := fs.Stat(p, false); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return nil, nil, "", unix.ENOTDIR
			}
		}
	}
	m := fs.mountOf(p)
	if m == nil {
		if _, ok := fs.files[p]; ok || fs.dirs[p] {
			return nil, nil, "", unix.EROFS
		}
		if _, err := fs.Stat(path.Dir(p), true); err != nil {
			return nil, nil, "", unix.ENOENT
		}
		return nil, nil, "", unix.EROFS
	}
	if p == m.guest {
		return nil, nil, "", unix.EBUSY // the mount point itself
	}
	if m.ro {
		return nil, nil, "", unix.EROFS
	}
	dir, err := m.open(path.Dir(p), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, false)
	if err != nil {
		return nil, nil, "", err
	}
	return m, dir, path.Base(p), nil
}

// inParent runs op on the directory holding guest path p, by its host
// descriptor, with p's last element: what every call that changes a
// directory's entries does.
func (fs *FS) inParent(p string, op func(dirfd int, name string) error) error {
	_, dir, name, err := fs.parent(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	return op(int(dir.Fd()), name)
}

// inParents is inParent for a call that names two paths (rename, link):
// both must be in one mount (EXDEV, as across file systems).
func (fs *FS) inParents(from, to string, op func(fromDir int, fromName string, toDir int, toName string) error) error {
	mf, df, nf, err := fs.parent(from)
	if err != nil {
		return err
	}
	defer df.Close()
	mt, dt, nt, err := fs.parent(to)
	if err != nil {
		return err
	}
	defer dt.Close()
	if mf != mt {
		return unix.EXDEV
	}
	return op(int(df.Fd()), nf, int(dt.Fd()), nt)
}

// Mkdir is mkdirat(2) of guest path p.
func (fs *FS) Mkdir(p string, mode uint32) error {
	if _, err := fs.Stat(p, false); err == nil {
		return unix.EEXIST
	}
	return fs.inParent(p, func(dir int, name string) error { return unix.Mkdirat(dir, name, mode&0o7777) })
}

// Unlink is unlinkat(2) of guest path p: a directory with
// unix.AT_REMOVEDIR.
func (fs *FS) Unlink(p string, flags int) error {
	return fs.inParent(p, func(dir int, name string) error { return unix.Unlinkat(dir, name, flags&unix.AT_REMOVEDIR) })
}

// Rename is renameat2(2) of guest paths from and to: within one mount
// (EXDEV across mounts, as across file systems).
func (fs *FS) Rename(from, to string, flags uint) error {
	return fs.inParents(from, to, func(fd int, fn string, td int, tn string) error {
		return unix.Renameat2(fd, fn, td, tn, flags&(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE))
	})
}

// Chmod is fchmodat2(2) of guest path p: a link in the last element is
// followed (in the guest's namespace) when follow, else refused with
// EOPNOTSUPP, as Linux refuses to change a link's mode.
func (fs *FS) Chmod(p string, mode uint32, follow bool) error {
	f, err := fs.final(p, follow)
	if err != nil {
		return err
	}
	defer f.Close()
	if isLink(f) {
		return unix.EOPNOTSUPP
	}
	return unix.Chmod(procFD(f), mode&0o7777)
}

// final opens the object guest path p names itself, O_PATH and never
// following a link on the host, after following links in the guest's
// namespace (the last element's only when follow): what a call that
// changes an inode's attributes must act on. Acting on the last element by
// name in its directory instead let the host kernel follow a link the
// guest made, to any file of the host (a guest changed the mode and times
// of a host file outside its mount so). A made file, or any file of a
// read-only mount, is EROFS.
func (fs *FS) final(p string, follow bool) (*os.File, error) {
	rp, err := fs.resolve(p, follow)
	if err != nil {
		return nil, err
	}
	m := fs.mountOf(rp)
	if m == nil || m.ro {
		if _, err := fs.Stat(rp, false); err != nil {
			return nil, err
		}
		return nil, unix.EROFS
	}
	f, err := m.open(rp, unix.O_PATH|unix.O_CLOEXEC, 0, true)
	if err != nil {
		return nil, err
	}
	if follow && isLink(f) {
		f.Close()
		return nil, unix.ELOOP // made a link since resolve looked
	}
	return f, nil
}

func isLink(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// procFD names the very inode an O_PATH descriptor holds, for the calls
// that take no descriptor of that kind (chmod, utimensat), as the C
// libraries do: the kernel follows the magic link to that inode, not to a
// path.
func procFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// Truncate is truncate(2) of guest path p.
func (fs *FS) Truncate(p string, size int64) error {
	f, err := fs.Open(p, unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Ftruncate(int(f.Fd()), size)
}

// tmpfsMagic is the f_type statfs reports for what the tree makes itself.
const tmpfsMagic = 0x01021994

// Statfs is statfs(2) of guest path p: the host file system's figures for
// a mount, those of an empty read-only tmpfs for the tree's own files and
// directories.
func (fs *FS) Statfs(p string) (unix.Statfs_t, error) {
	var st unix.Statfs_t
	p, err := fs.resolve(p, true)
	if err != nil {
		return st, err
	}
	if m := fs.mountOf(p); m != nil {
		f, err := m.open(p, unix.O_PATH|unix.O_CLOEXEC, 0, false)
		if err != nil {
			return st, err
		}
		defer f.Close()
		err = unix.Fstatfs(int(f.Fd()), &st)
		return st, err
	}
	if _, err := fs.Stat(p, true); err != nil {
		return st, err
	}
	st.Type, st.Bsize, st.Frsize, st.Namelen = tmpfsMagic, 4096, 4096, 255
	st.Flags = unix.ST_RDONLY
	return st, nil
}

// Symlink is symlinkat(2): a link at guest path p holding target. What a
// link says cannot lead out: every walk through it stays beneath its
// mount's root.
func (fs *FS) Symlink(target, p string) error {
	if target == "" {
		return unix.ENOENT
	}
	return fs.inParent(p, func(dir int, name string) error { return unix.Symlinkat(target, dir, name) })
}

// Link is linkat(2) without AT_SYMLINK_FOLLOW: a hard link, within one
// mount, at guest path to of the file at from.
func (fs *FS) Link(from, to string) error {
	return fs.inParents(from, to, func(fd int, fn string, td int, tn string) error {
		return unix.Linkat(fd, fn, td, tn, 0)
	})
}

// Utimes is utimensat(2) of guest path p (ts nil: now); nofollow changes
// a link itself.
func (fs *FS) Utimes(p string, ts []unix.Timespec, nofollow bool) error {
	f, err := fs.final(p, !nofollow)
	if err != nil {
		return err
	}
	defer f.Close()
	if isLink(f) {
		// The link itself, by name in its directory: AT_SYMLINK_NOFOLLOW
		// never follows it on the host.
		return fs.inParent(p, func(dir int, name string) error {
			return unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW)
		})
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFD(f), ts, 0)
}
