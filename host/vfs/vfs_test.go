package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestFS(t *testing.T) (*FS, string, string) {
	t.Helper()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{data, outside, filepath.Join(data, "sub")} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(data, "config.yaml"), []byte("port: 8080\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret\n"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(data, "abs-link"))
	os.Symlink("../outside/secret", filepath.Join(data, "rel-link"))
	os.Symlink("config.yaml", filepath.Join(data, "ok-link"))
	rw := filepath.Join(root, "rw")
	os.MkdirAll(rw, 0o755)
	fs, err := New(Config{
		Mounts:   []Mount{{Guest: "/srv/data", Host: data, ReadOnly: true}, {Guest: "/var/rw", Host: rw}},
		Hostname: "box", DNS: []string{"10.0.2.3"}, UID: 1000, GID: 1000, User: "dev",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Close)
	return fs, data, rw
}

func read(t *testing.T, fs *FS, p string) (string, error) {
	t.Helper()
	f, err := fs.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestOpenMountsAndMadeFiles(t *testing.T) {
	fs, _, rw := newTestFS(t)
	for p, want := range map[string]string{
		"/srv/data/config.yaml": "port: 8080\n",
		"/srv/data/ok-link":     "port: 8080\n",
		"/etc/hostname":         "box\n",
		"/etc/resolv.conf":      "nameserver 10.0.2.3\n",
	} {
		if got, err := read(t, fs, p); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
	if got, _ := read(t, fs, "/etc/hosts"); !strings.Contains(got, "127.0.0.1\tlocalhost") {
		t.Errorf("/etc/hosts: %q", got)
	}
	if got, _ := read(t, fs, "/etc/passwd"); got != "dev:x:1000:1000:dev:/:/nonexistent\n" {
		t.Errorf("/etc/passwd: %q", got)
	}
	f, err := fs.Open("/var/rw/new.txt", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("written by the guest")
	f.Close()
	if b, _ := os.ReadFile(filepath.Join(rw, "new.txt")); string(b) != "written by the guest" {
		t.Errorf("rw mount: %q", b)
	}
	if st, err := fs.Stat("/srv", true); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("stat /srv: %v %o", err, st.Mode)
	}
	if st, err := fs.Stat("/srv/data/sub", true); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("stat /srv/data/sub: %v %o", err, st.Mode)
	}
	if l, err := fs.Readlink("/srv/data/ok-link"); err != nil || l != "config.yaml" {
		t.Errorf("readlink: %q %v", l, err)
	}
}

// Every way out of a mount is refused, and a read-only mount is read-only.
func TestEscapesAndReadOnly(t *testing.T) {
	fs, _, _ := newTestFS(t)
	for _, c := range []struct {
		path  string
		flags int
		want  error
	}{
		// Links are followed in the guest's namespace: the host path an
		// absolute link names, and ../outside from the mount, are not
		// there.
		{"/srv/data/abs-link", unix.O_RDONLY, unix.ENOENT},
		{"/srv/data/rel-link", unix.O_RDONLY, unix.ENOENT},
		{"/srv/data/abs-link", unix.O_RDONLY | unix.O_NOFOLLOW, unix.ELOOP},
		{"/srv/data/config.yaml", unix.O_RDWR, unix.EROFS},
		{"/srv/data/new", unix.O_WRONLY | unix.O_CREAT, unix.EROFS},
		{"/etc/hosts", unix.O_WRONLY, unix.EROFS},
		{"/nosuch", unix.O_RDONLY, unix.ENOENT},
		{"/newfile", unix.O_WRONLY | unix.O_CREAT, unix.EROFS},
		{"/proc/self/mem", unix.O_RDONLY, unix.ENOENT},
	} {
		f, err := fs.Open(c.path, c.flags, 0o644)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("open %s %#x: %v, want %v", c.path, c.flags, err, c.want)
		}
	}
	// ".." is walked (from the guest's root it stays there): it cannot
	// climb out of the guest's root.
	if p, err := fs.Resolve("/srv/data/../../../../etc/hosts"); err != nil || p != "/etc/hosts" {
		t.Errorf("resolve: %q %v", p, err)
	}
	if s, _ := read(t, fs, "/srv/data/../../../../etc/hostname"); s != "box\n" {
		t.Errorf("/etc/hostname through ..: %q", s)
	}
	if _, err := Clean(strings.Repeat("a/", 2100), "/"); err != unix.ENAMETOOLONG {
		t.Errorf("long path: %v", err)
	}
	if _, err := Clean("/etc/ho\x00sts", "/"); err != unix.EINVAL {
		t.Errorf("NUL: %v", err)
	}
	if err := fs.Access("/srv/data/config.yaml", unix.W_OK); err != unix.EROFS {
		t.Errorf("access W_OK on ro: %v", err)
	}
	if err := fs.Access("/srv/data/config.yaml", unix.R_OK); err != nil {
		t.Errorf("access R_OK: %v", err)
	}
}

func TestMountSourceMustExist(t *testing.T) {
	_, err := New(Config{Mounts: []Mount{{Guest: "/data", Host: "/nonexistent/dir"}}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/dir") {
		t.Fatalf("err = %v", err)
	}
}

func TestChanges(t *testing.T) {
	fs, data, rw := newTestFS(t)
	if err := fs.Mkdir("/var/rw/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.Mkdir("/var/rw/d", 0o755); err != unix.EEXIST {
		t.Errorf("mkdir twice: %v", err)
	}
	f, err := fs.Open("/var/rw/d/f", unix.O_WRONLY|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fs.Rename("/var/rw/d/f", "/var/rw/g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rw, "g")); err != nil {
		t.Errorf("renamed file: %v", err)
	}
	if err := fs.Rename("/var/rw/g", "/srv/data/g", 0); err != unix.EROFS {
		t.Errorf("rename into a read-only mount: %v", err)
	}
	if err := fs.Unlink("/var/rw/g", 0); err != nil {
		t.Error(err)
	}
	if err := fs.Unlink("/var/rw/d", unix.AT_REMOVEDIR); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		err, want error
	}{
		{fs.Mkdir("/srv/data/x", 0o755), unix.EROFS},
		{fs.Unlink("/srv/data/config.yaml", 0), unix.EROFS},
		{fs.Unlink("/etc/hosts", 0), unix.EROFS},
		{fs.Mkdir("/etc/x", 0o755), unix.EROFS},
		{fs.Unlink("/var/rw", unix.AT_REMOVEDIR), unix.EBUSY},
		{fs.Mkdir("/var/rw/../../srv/data/x", 0o755), nil}, // /srv/data/x: read-only
	} {
		if c.want != nil && c.err != c.want {
			t.Errorf("%v, want %v", c.err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "x")); err == nil {
		t.Errorf("a directory was made in the read-only mount")
	}
}

func TestDevices(t *testing.T) {
	fs, _, _ := newTestFS(t)
	f, err := fs.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write([]byte("gone")); n != 4 || err != nil {
		t.Errorf("write /dev/null: %d %v", n, err)
	}
	f.Close()
	if got, err := read(t, fs, "/dev/null"); got != "" || err != nil {
		t.Errorf("read /dev/null: %q %v", got, err)
	}
	if st, err := fs.Stat("/dev/urandom", true); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("stat /dev/urandom: %v %o", err, st.Mode)
	}
	if _, err := fs.Open("/dev/sda", unix.O_RDONLY, 0); err != unix.ENOENT {
		t.Errorf("/dev/sda: %v", err)
	}
}

func TestLinks(t *testing.T) {
	fs, _, rw := newTestFS(t)
	os.WriteFile(filepath.Join(rw, "f"), []byte("data"), 0o644)
	if err := fs.Symlink("/etc/passwd", "/var/rw/l"); err != nil {
		t.Fatal(err)
	}
	// The link says /etc/passwd: the guest's, never the host's.
	if got, err := read(t, fs, "/var/rw/l"); err != nil || !strings.HasPrefix(got, "dev:x:1000") {
		t.Errorf("open through an absolute link: %q %v", got, err)
	}
	// Across mounts, and through a link to a directory.
	fs.Symlink("/srv/data", "/var/rw/data")
	if got, err := read(t, fs, "/var/rw/data/config.yaml"); err != nil || got != "port: 8080\n" {
		t.Errorf("through a directory link to another mount: %q %v", got, err)
	}
	// A loop is ELOOP.
	fs.Symlink("loop2", "/var/rw/loop1")
	fs.Symlink("loop1", "/var/rw/loop2")
	if _, err := fs.Open("/var/rw/loop1", unix.O_RDONLY, 0); err != unix.ELOOP {
		t.Errorf("a loop: %v", err)
	}
	if err := fs.Symlink("f", "/var/rw/rel"); err != nil {
		t.Fatal(err)
	}
	if got, err := read(t, fs, "/var/rw/rel"); got != "data" || err != nil {
		t.Errorf("relative link: %q %v", got, err)
	}
	if err := fs.Link("/var/rw/f", "/var/rw/hard"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Link("/srv/data/config.yaml", "/var/rw/stolen"); err != unix.EROFS {
		t.Errorf("link out of a read-only mount: %v", err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(2e9)}
	if err := fs.Utimes("/var/rw/f", ts, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(rw, "f")); st.ModTime().Unix() != 2 {
		t.Errorf("mtime %v", st.ModTime())
	}
	if err := fs.Utimes("/srv/data/config.yaml", ts, false); err != unix.EROFS {
		t.Errorf("utimes on read-only: %v", err)
	}
}

// A FIFO in a mount never blocks the open, and device nodes are refused,
// as with nodev.
func TestFIFOAndDevicesInMounts(t *testing.T) {
	fs, _, rw := newTestFS(t)
	if err := unix.Mkfifo(filepath.Join(rw, "fifo"), 0o600); err != nil {
		t.Skip("SKIPPED: no FIFO here:", err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := fs.Open("/var/rw/fifo", unix.O_RDONLY, 0)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("open a FIFO for reading: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
	if os.Getuid() == 0 {
		if err := unix.Mknod(filepath.Join(rw, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
			if _, err := fs.Open("/var/rw/null", unix.O_RDWR, 0); err != unix.EACCES {
				t.Errorf("a device node in a mount: %v, want EACCES", err)
			}
		}
	} else {
		t.Log("SKIPPED LOUDLY: making a device node needs root")
	}
}

// The made directories can be listed: / holds etc, srv, var and dev.
func TestListMadeDirectories(t *testing.T) {
	fs, _, _ := newTestFS(t)
	f, err := fs.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	sort.Strings(names)
	if err != nil || strings.Join(names, " ") != "dev etc proc srv var" {
		t.Errorf("/: %v %v", names, err)
	}
	f, _ = fs.Open("/etc", unix.O_RDONLY, 0)
	names, _ = f.Readdirnames(-1)
	f.Close()
	sort.Strings(names)
	if strings.Join(names, " ") != "group hostname hosts passwd resolv.conf" {
		t.Errorf("/etc: %v", names)
	}
	if g, ok := fs.GuestPath(filepath.Join(fs.skel, "etc")); !ok || g != "/etc" {
		t.Errorf("GuestPath of the skeleton's etc: %q %v", g, ok)
	}
	if _, err := fs.Open("/etc", unix.O_WRONLY, 0); err != unix.EISDIR {
		t.Errorf("open /etc for writing: %v", err)
	}
}

// /proc/self/exe names the program (os.Executable), as Linux's does; with
// no program given it is not there.
func TestExecutableLink(t *testing.T) {
	fs, err := New(Config{Executable: "/server"})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for _, p := range []string{"/proc/self/exe", "/proc/1/exe", "/proc/self/../self/exe"} {
		if got, err := fs.Readlink(p); got != "/server" || err != nil {
			t.Errorf("Readlink(%s) = %q, %v", p, got, err)
		}
	}
	bare, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if _, err := bare.Readlink("/proc/self/exe"); err == nil {
		t.Error("/proc/self/exe with no program: no error")
	}
}

// A link the guest makes in a writable mount, to a host file outside it,
// never lets chmod or utimensat reach that file: the host kernel once
// followed it (a guest made a host file 0777 and set its times).
func TestAttributesNeverFollowLinksOnTheHost(t *testing.T) {
	fs, _, rw := newTestFS(t)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("host file\n"), 0o600)
	old := time.Unix(1e9, 0)
	os.Chtimes(victim, old, old)
	if err := fs.Symlink(victim, "/var/rw/x"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Chmod("/var/rw/x", 0o777, true); err == nil {
		t.Error("chmod through a link to a host path succeeded")
	}
	if err := fs.Utimes("/var/rw/x", []unix.Timespec{{Sec: 1}, {Sec: 1}}, false); err == nil {
		t.Error("utimensat through a link to a host path succeeded")
	}
	st, _ := os.Stat(victim)
	if st.Mode().Perm() != 0o600 || !st.ModTime().Equal(old) {
		t.Errorf("the host file changed: mode %v, time %v", st.Mode(), st.ModTime())
	}
	// A link within the tree is followed there, as Linux follows it.
	os.WriteFile(filepath.Join(rw, "f"), nil, 0o644)
	fs.Symlink("f", "/var/rw/l")
	if err := fs.Chmod("/var/rw/l", 0o600, true); err != nil {
		t.Errorf("chmod through a link in the tree: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(rw, "f")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after chmod through the link", st.Mode())
	}
	if err := fs.Chmod("/var/rw/l", 0o644, false); err != unix.EOPNOTSUPP {
		t.Errorf("chmod of a link itself: %v, want EOPNOTSUPP", err)
	}
	if err := fs.Utimes("/var/rw/l", []unix.Timespec{{Sec: 5}, {Sec: 5}}, true); err != nil {
		t.Errorf("utimensat of a link itself: %v", err)
	}
	if err := fs.Chmod("/srv/data/config.yaml", 0o600, true); err != unix.EROFS {
		t.Errorf("chmod in a read-only mount: %v", err)
	}
	if err := fs.Chmod("/var/rw", 0o755, true); err != nil {
		t.Errorf("chmod of the mount point: %v", err)
	}
}

// Paths are walked as Linux walks them: "link/.." is the parent of the
// link's target, "file/" and "file/." are not directories, and a trailing
// slash follows a link to a directory.
func TestPathsWalkedAsLinux(t *testing.T) {
	fs, _, rw := newTestFS(t)
	os.MkdirAll(filepath.Join(rw, "a/deep/er"), 0o755)
	os.WriteFile(filepath.Join(rw, "a/deep/target"), []byte("deep\n"), 0o644)
	os.WriteFile(filepath.Join(rw, "target"), []byte("top\n"), 0o644)
	os.Symlink("a/deep/er", filepath.Join(rw, "link"))
	os.Symlink("target", filepath.Join(rw, "filelink"))
	os.Symlink("target/", filepath.Join(rw, "slashlink"))
	clean := func(p string) string {
		c, err := Clean(p, "/var/rw")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		path, want string
		err        error
	}{
		{"link/../target", "deep\n", nil},        // the parent of a/deep/er
		{"a/deep/../deep/target", "deep\n", nil}, // no link: as lexically
		{"a/../target", "top\n", nil},
		{"a/deep/../target", "", unix.ENOENT},
		{"target/", "", unix.ENOTDIR},
		{"target/.", "", unix.ENOTDIR},
		{"filelink/", "", unix.ENOTDIR},
		{"slashlink", "", unix.ENOTDIR}, // its target, "target/", is no directory
		{"target/x", "", unix.ENOTDIR},
		{"missing/x", "", unix.ENOENT},
		{"./a/./deep/./target", "deep\n", nil},
		{"/var/rw//a//deep/target", "deep\n", nil},
	} {
		got, err := read(t, fs, clean(c.path))
		if err != c.err || got != c.want {
			t.Errorf("%s: %q, %v; want %q, %v", c.path, got, err, c.want, c.err)
		}
	}
	if st, err := fs.Stat(clean("link/"), false); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("stat link/ (a trailing slash follows the link): %v", err)
	}
	if st, err := fs.Stat(clean("link"), false); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("lstat link: %v", err)
	}
	if p, err := fs.Resolve(clean("link/..")); err != nil || p != "/var/rw/a/deep" {
		t.Errorf("resolve link/..: %q %v", p, err)
	}
	if err := fs.Rename(clean("./"), clean("other"), 0); err != unix.EINVAL {
		t.Errorf("rename ./: %v, want EINVAL", err)
	}
	for _, p := range []string{".", ".."} {
		if err := fs.Unlink(clean("a/"+p), unix.AT_REMOVEDIR); err != unix.EINVAL {
			t.Errorf("rmdir a/%s: %v, want EINVAL", p, err)
		}
	}
	if err := fs.Unlink(clean("target/"), 0); err != unix.ENOTDIR {
		t.Errorf("unlink target/: %v, want ENOTDIR", err)
	}
	if err := fs.Unlink(clean("link/"), unix.AT_REMOVEDIR); err != unix.ENOTDIR {
		t.Errorf("rmdir link/ (a link to a directory): %v, want ENOTDIR", err)
	}
	if err := fs.Mkdir(clean("newdir/"), 0o755); err != nil {
		t.Errorf("mkdir newdir/: %v", err)
	}
	if err := fs.Rename(clean("link/../target"), clean("moved"), 0); err != nil {
		t.Errorf("rename through link/..: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rw, "a/deep/target")); err == nil {
		t.Error("rename through link/.. moved the wrong file")
	}
}

// A mount beneath another (mote exec's tree inside the guest's own /tmp)
// is reached though its parents are not in the outer mount.
func TestNestedMount(t *testing.T) {
	outer, inner := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(inner, "f"), []byte("inner\n"), 0o644)
	fs, err := New(Config{Mounts: []Mount{{Guest: "/tmp", Host: outer}, {Guest: "/tmp/a/b", Host: inner, ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for _, p := range []string{"/tmp/a/b/f", "/tmp/a/b/../b/f", "/tmp/./a//b/f"} {
		c, _ := Clean(p, "/")
		if s, err := read(t, fs, c); s != "inner\n" {
			t.Errorf("%s: %q %v", p, s, err)
		}
	}
}
