package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moteos/mote/host/imagecache"
)

// These tests drive the real mote binary, as a user would.

var (
	moteBin string
	tmpDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mote-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	moteBin = filepath.Join(dir, "mote")
	if out, err := exec.Command("go", "build", "-o", moteBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mote: %v\n%s", err, out)
		os.Exit(1)
	}
	// The images these tests boot are copied to a cache of their own,
	// removed with them, rather than to the user's.
	shm := "/dev/shm"
	if _, err := os.Stat(shm); err != nil {
		shm = dir
	}
	cache, err := os.MkdirTemp(shm, "mote-cli-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("MOTE_IMAGE_CACHE", cache)
	os.Setenv("MOTE_CACHE", filepath.Join(dir, "cache")) // build files, removed with dir
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(cache)
	os.Exit(code)
}

func kvmOK() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func needKVM(t *testing.T) {
	t.Helper()
	if !kvmOK() {
		t.Skip("SKIPPED LOUDLY: /dev/kvm is not usable here; hvt cases need KVM")
	}
}

type out struct {
	status         int
	stdout, stderr string
}

// mote runs the CLI from the repository root, so package paths are the
// README's.
func mote(t *testing.T, args ...string) out {
	t.Helper()
	return moteEnv(t, nil, args...)
}

// moteEnv is mote with env added to the environment.
func moteEnv(t *testing.T, env []string, args ...string) out {
	t.Helper()
	return moteIn(t, "../..", env, args...)
}

// moteIn runs the CLI in dir.
func moteIn(t *testing.T, dir string, env []string, args ...string) out {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, moteBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out{status, so.String(), se.String()}
}

// The package in the working directory, as a user inside a module types
// it: mote run . once built its image over its own temporary directory's
// path on every target. hvt, which needs KVM, shares the code path.
func TestRunDot(t *testing.T) {
	for _, c := range []struct {
		dir  string
		args []string
	}{
		{"../../examples/hello", []string{"run", "-t", "unix", "."}},
		{"../../examples/hello", []string{"run", "-t", "spt", "."}},
		{"../../examples/hello", []string{"run", "-t", "spt", "./"}},
		{"../../examples", []string{"run", "-t", "spt", "./hello"}},
		{"../../examples/hello/", []string{"run", "-t", "unix", "../hello"}},
	} {
		got := moteIn(t, c.dir, nil, c.args...)
		if got.status != 0 || !strings.Contains(got.stdout, "hello from mote") {
			t.Errorf("in %s, mote %s: status %d\nstdout %q\nstderr %q", c.dir, strings.Join(c.args, " "), got.status, got.stdout, got.stderr)
		}
	}
	// mote build . names the image after the directory, as go build does.
	dir := t.TempDir()
	img := filepath.Join(dir, "x.spt")
	if got := moteIn(t, "../../examples/hello", nil, "build", "-t", "spt", "-o", img, "."); got.status != 0 {
		t.Fatalf("mote build .: %d %s", got.status, got.stderr)
	}
	if st, err := os.Stat(img); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("mote build . -o %s: %v", img, err)
	}
	// An image in the current directory runs by its bare name on every
	// target (unix looked it up on $PATH), and a mistyped one is said to
	// be missing, not handed to the Go toolchain as a module path.
	for _, target := range []string{"unix", "spt"} {
		if got := moteIn(t, dir, nil, "run", "-t", target, "x.spt"); got.status != 0 || !strings.Contains(got.stdout, "hello from mote") {
			t.Errorf("%s x.spt in its directory: status %d\nstdout %q\nstderr %q", target, got.status, got.stdout, got.stderr)
		}
	}
	if got := moteIn(t, dir, nil, "run", "-t", "spt", "y.spt"); got.status != 125 || !strings.Contains(got.stderr, "no such image or package: y.spt") {
		t.Errorf("a missing image: status %d\nstderr %q", got.status, got.stderr)
	}
	// Flags the unix target cannot honour say so rather than doing nothing.
	if got := moteIn(t, dir, nil, "run", "-t", "unix", "--strict", "--stats", "x.spt"); got.status != 0 || !strings.Contains(got.stderr, "--strict, --stats ignored") {
		t.Errorf("unix --strict --stats: status %d\nstderr %q", got.status, got.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
		want   string
	}{
		{nil, 2, "usage: mote COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"build", "-t", "vmx", "./examples/hello"}, 2, `unknown target "vmx" (targets: unix, hvt, spt)`},
		{[]string{"run", "-t", "vmx", "./examples/hello"}, 2, `unknown target "vmx"`},
		{[]string{"run", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"run"}, 2, "want an image or a package"},
		{[]string{"run", "-m", "lots", "./examples/hello"}, 2, "want a size"},
		{[]string{"run", "-m", "4K", "./examples/hello"}, 2, "-m 4K: at least 16M on every target (4K given)"},
		{[]string{"run", "-t", "spt", "-m", "1", "./examples/hello"}, 2, "at least 16M on every target (1M given)"},
		{[]string{"run", "-m", "100000G", "./examples/hello"}, 2, "more than this host's"},
		{[]string{"run", "--cpus", "0", "./examples/hello"}, 2, "want 1 to 64"},
		{[]string{"run", "--env", "NOEQUALS", "./examples/hello"}, 2, "want KEY=VALUE"},
		{[]string{"run", "--net", "wifi", "./examples/hello"}, 2, `--net "wifi"`},
		{[]string{"run", "-t", "spt", "--net", "user,host=maybe", "./examples/hello"}, 2, `unknown setting "host=maybe"`},
		{[]string{"run", "-p", "8080:80", "./examples/hello"}, 2, "-p needs --net user"},
		{[]string{"run", "-t", "unix", "--block", "BAD=x", "./examples/hello"}, 2, "want NAME=FILE"},
		{[]string{"run", "-t", "spt", "--profile", "cpu.pprof", "./examples/hello"}, 2, "--profile is for -t hvt"},
		{[]string{"build", "a", "b"}, 2, "one package at a time"},
		{[]string{"help", "nosuch"}, 2, `no command "nosuch"`},
	} {
		got := mote(t, c.args...)
		if got.status != c.status || !strings.Contains(got.stderr, c.want) {
			t.Errorf("mote %q: status %d, stderr:\n%s\nwant %d and %q", c.args, got.status, got.stderr, c.status, c.want)
		}
	}
}

// A flag of mote's after the image reaches the program, as go run's do,
// and mote says so; after -- it says nothing. Reports from a tender begin
// with "mote:" as every line mote prints.
func TestFlagAfterImageHint(t *testing.T) {
	hello := guestBinary(t, "hello")
	got := mote(t, "run", "-t", "spt", hello, "--stats")
	if got.status != 0 || !strings.Contains(got.stderr, "mote: --stats comes after the image") {
		t.Errorf("--stats after the image: status %d, stderr %q", got.status, got.stderr)
	}
	for _, args := range [][]string{{hello, "--", "--stats"}, {hello, "-x"}, {hello, "5"}} {
		if got := mote(t, append([]string{"run", "-t", "spt"}, args...)...); strings.Contains(got.stderr, "comes after the image") {
			t.Errorf("%q: a hint where none is due: %q", args, got.stderr)
		}
	}
	if got := mote(t, "run", "-t", "spt", "/etc/passwd"); got.status != 125 || !strings.HasPrefix(got.stderr, "mote: ") {
		t.Errorf("a file that is no image: status %d, stderr %q", got.status, got.stderr)
	}
}

// TestExitStatuses holds docs/abi.md's table of mote's own statuses.
func TestExitStatuses(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
	}{
		{[]string{"run", "-t", "spt", "--bogus", "x"}, 2},
		{[]string{"build", "-t", "spt", "--bogus"}, 2},
		{[]string{"build", "-t", "spt", "./cmd/mote/testdata/broken"}, 1},
		{[]string{"run", "-t", "spt", "./cmd/mote/testdata/broken"}, 125},
		{[]string{"run", "-t", "spt", "/etc/passwd"}, 125},
		{[]string{"run", "-t", "spt", "--block", "x=/no/such/file", guestBinary(t, "hello")}, 125},
		{[]string{"run", "-t", "spt", guestBinary(t, "panic")}, 2},
		{[]string{"run", "-t", "spt", guestBinary(t, "hello"), "--", "7"}, 7},
	} {
		if got := mote(t, c.args...); got.status != c.status {
			t.Errorf("mote %q: status %d, want %d\n%s", c.args, got.status, c.status, got.stderr)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	got := mote(t, "build", "-t", "hvt", "./cmd/mote/testdata/broken")
	if got.status == 0 || !strings.Contains(got.stderr, "undefined: undefinedFunction") || !strings.Contains(got.stderr, "main.go:6") {
		t.Errorf("compile error: status %d, stderr:\n%s", got.status, got.stderr)
	}
	got = mote(t, "build", "-t", "hvt", "./no/such/package")
	if got.status == 0 || !strings.Contains(got.stderr, "no/such/package") {
		t.Errorf("missing package: status %d, stderr:\n%s", got.status, got.stderr)
	}
	got = mote(t, "run", "-t", "unix", "./no/such/package")
	if got.status == 0 || !strings.Contains(got.stderr, "no/such/package") {
		t.Errorf("run of a missing package: status %d, stderr:\n%s", got.status, got.stderr)
	}
}

func TestBuildAndInspect(t *testing.T) {
	img := filepath.Join(tmpDir, "hello.hvt")
	got := mote(t, "build", "-t", "hvt", "-o", img, "./examples/hello")
	if got.status != 0 || !strings.Contains(got.stdout, img) {
		t.Fatalf("build: %+v", got)
	}
	got = mote(t, "inspect", img)
	for _, want := range []string{"go1.", "entry 0x", "GOAMD64=v1", "CGO_ENABLED=0", "r-x", "mote: a development tree"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, got.stdout)
		}
	}
	// A static binary of another module, with no Mote in it.
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "go.mod"), []byte("module example.com/plain\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(plain, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", "plain")
	cmd.Dir, cmd.Env = plain, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := mote(t, "inspect", filepath.Join(plain, "plain")); !strings.Contains(got.stdout, "mote: none") {
		t.Errorf("inspect of a binary without Mote:\n%s%s", got.stdout, got.stderr)
	}
	got = mote(t, "inspect", "/etc/hostname")
	if got.status == 0 || !strings.Contains(got.stderr, "not an ELF file") {
		t.Errorf("inspect of a text file: %+v", got)
	}
	if got := mote(t, "version"); got.status != 0 || !strings.HasPrefix(got.stdout, "mote ") {
		t.Errorf("version: %+v", got)
	}
	if got := mote(t, "help", "run"); got.status != 0 || !strings.Contains(got.stdout, "--net user[,host=off]|tap:IFNAME") {
		t.Errorf("help run: %+v", got)
	}
}

// The program's exit status and output pass through on every target.
func TestExitStatusPassesThrough(t *testing.T) {
	targets := []string{"unix"}
	if kvmOK() {
		targets = append(targets, "hvt")
	}
	for _, target := range targets {
		for _, status := range []string{"0", "3"} {
			got := mote(t, "run", "-t", target, "./examples/hello", "--", "-exit", status)
			want := fmt.Sprintf("hello from mote (target %s)\n", target)
			if fmt.Sprint(got.status) != status || got.stdout != want {
				t.Errorf("%s: status %d stdout %q stderr %q; want %s and %q", target, got.status, got.stdout, got.stderr, status, want)
			}
		}
	}
}

// TestImageCacheCopiesImagesNotBuilds: an image booted on hvt is copied
// once to MOTE_IMAGE_CACHE; a package built for one run, or any image
// with MOTE_IMAGE_CACHE=off, is not.
func TestImageCacheCopiesImagesNotBuilds(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	env := []string{"MOTE_IMAGE_CACHE=" + cache}
	copies := func() int {
		paths, _ := imagecache.Cache{Dir: cache}.Copies()
		return len(paths)
	}
	img := filepath.Join(dir, "hello.hvt")
	if got := mote(t, "build", "-o", img, "./examples/hello"); got.status != 0 {
		t.Fatalf("build: %+v", got)
	}
	want := "hello from mote (target hvt)\n"
	steps := []struct {
		env    []string
		what   string
		copies int
	}{
		{env, "./examples/hello", 0},
		{[]string{"MOTE_IMAGE_CACHE=off"}, img, 0},
		{env, img, 1},
		{env, img, 1},
	}
	for _, s := range steps {
		got := moteEnv(t, s.env, "run", s.what)
		if got.status != 0 || got.stdout != want {
			t.Fatalf("run %s with %v: %+v", s.what, s.env, got)
		}
		if n := copies(); n != s.copies {
			t.Fatalf("after running %s with %v: %d copies in the cache, want %d", s.what, s.env, n, s.copies)
		}
	}
}

// TestFullTmpfsImageCache runs hvt with its image cache on a tmpfs too
// small, in a mount namespace of the test's own: with room only once the
// older copy filling it is removed, the copy is made after all; with no
// room at all, the guest boots from the image file, and no partial copy is
// left behind.
func TestFullTmpfsImageCache(t *testing.T) {
	needKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root to mount a small tmpfs in a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIPPED LOUDLY: needs unshare(1) for a mount namespace")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "hello.hvt")
	if got := mote(t, "build", "-o", img, "./examples/hello"); got.status != 0 {
		t.Fatalf("build: %+v", got)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "shm")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		sizeKB int64
		want   string // what the cache holds afterwards
	}{
		// An old copy takes half the room: the new copy fits once it goes.
		{"room after removing the old copy", st.Size()*3/2>>10 + 64, "one copy, of the image"},
		{"no room", st.Size() / 2 >> 10, "nothing"},
	} {
		script := `set -e
mount -t tmpfs -o size=${SIZE}k,mode=0700 tmpfs "$MNT"
mkdir -m 0700 "$MNT/cache"
head -c $((${SIZE} * 1024 / 2)) /dev/zero > "$MNT/cache/0000000000000000000000000000old0"
MOTE_IMAGE_CACHE="$MNT/cache" "$MOTE" run --trace "$IMG" 2>"$MNT/trace" || { cat "$MNT/trace" >&2; exit 1; }
echo "--- trace"; grep "booting from the image file" "$MNT/trace" || true
echo "--- cache"; for f in "$MNT"/cache/* "$MNT"/cache/.new-*; do [ -e "$f" ] || continue; if cmp -s "$f" "$IMG"; then echo "copy of the image"; else echo "other: $(basename "$f")"; fi; done
`
		cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
		cmd.Env = append(os.Environ(), fmt.Sprint("SIZE=", c.sizeKB), "MNT="+mnt, "MOTE="+moteBin, "IMG="+img)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		text := string(out)
		if !strings.HasPrefix(text, "hello from mote (target hvt)\n") {
			t.Fatalf("%s: the guest did not run:\n%s", c.name, text)
		}
		_, cache, _ := strings.Cut(text, "--- cache\n")
		switch c.want {
		case "one copy, of the image":
			if cache != "copy of the image\n" {
				t.Errorf("%s: cache holds:\n%swant only a copy of the image\n%s", c.name, cache, text)
			}
		case "nothing":
			if cache != "" || !strings.Contains(text, "no space left on device") {
				t.Errorf("%s: cache holds:\n%swant nothing, and a trace of booting from the file\n%s", c.name, cache, text)
			}
		}
	}
}

func TestHVTWithoutImageIsRefused(t *testing.T) {
	got := mote(t, "run", "-t", "hvt", "/etc/hostname")
	if got.status != 125 || !strings.Contains(got.stderr, "not an ELF file") {
		t.Errorf("status %d stderr %q", got.status, got.stderr)
	}
}

// A published port that is taken ends the run before the guest runs, on
// both confining targets: the user network starts while the machine is
// made, and the guest waits for it.
func TestPublishedPortInUse(t *testing.T) {
	needKVM(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	img := filepath.Join(t.TempDir(), "hello.hvt")
	if got := mote(t, "build", "-o", img, "./examples/hello"); got.status != 0 {
		t.Fatalf("build: %s", got.stderr)
	}
	for _, target := range []string{"hvt", "spt"} {
		got := mote(t, "run", "-t", target, "--net", "user", "-p", l.Addr().String()+":80", img)
		if got.status != 125 || got.stdout != "" || !strings.Contains(got.stderr, l.Addr().String()) || !strings.Contains(got.stderr, "address already in use") {
			t.Errorf("%s: status %d stdout %q stderr %q", target, got.status, got.stdout, got.stderr)
		}
	}
}

// freePort returns a loopback port free at the time of asking.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is a mote run in the background, ended by the test by PID.
type server struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, args ...string) *server {
	t.Helper()
	return startCmd(t, moteBin, args...)
}

// startCmd starts any command (such as mote under ip netns exec).
func startCmd(t *testing.T, name string, args ...string) *server {
	t.Helper()
	return startIn(t, "../..", name, args...)
}

// startIn starts a command in dir.
func startIn(t *testing.T, dir, name string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(name, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so cleanup can end all it started
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // mote and the program it started
			<-s.done
		}
	})
	return s
}

// waitFor waits until probe succeeds or the server exits. Probes speak the
// service's protocol: a TCP connect is no sign of life for a port published
// with --net user, since mote's host-side listener accepts at once and
// resets the connection if the guest does not answer.
func (s *server) waitFor(t *testing.T, what string, probe func() error) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // the first run builds the package
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("server exited early: %v\nstdout:\n%s\nstderr:\n%s", s.cmd.ProcessState, s.stdout, s.stderr)
		default:
		}
		if err = probe(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered: %v\nstderr:\n%s", what, err, s.stderr)
}

// waitHTTP waits until the HTTP server at addr answers. It asks
// "OPTIONS *", which net/http answers itself, so the application's handlers
// never see the probe (httpd counts its requests).
func (s *server) waitHTTP(t *testing.T, addr string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	s.waitFor(t, addr, func() error {
		req, err := http.NewRequest(http.MethodOptions, "http://"+addr, nil)
		if err != nil {
			return err
		}
		req.URL.Opaque = "*"
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("OPTIONS *: %s", resp.Status)
		}
		return nil
	})
}

// stop interrupts the server (SIGINT) and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop on SIGINT")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("server exit status %d\nstderr:\n%s", code, s.stderr)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"32": 32 << 20, "64M": 64 << 20, "1G": 1 << 30, "512MiB": 512 << 20, "65536K": 64 << 20, " 2g ": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "M", "12X", "1.5G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// Without KVM, mote says what to do instead: the other targets, or the
// kvm group when the device is there but closed to the user.
func TestKVMUnusableSaysWhatToDo(t *testing.T) {
	err := kvmUsable(filepath.Join(t.TempDir(), "kvm"))
	if err == nil || !strings.Contains(err.Error(), "is missing") || !strings.Contains(err.Error(), "-t spt or -t unix") {
		t.Errorf("missing device: %v", err)
	}
	if err := kvmUsable(os.DevNull); err != nil {
		t.Errorf("an openable device: %v", err)
	}
}

// TestRunInterruptedBuild: SIGINT to mote while it builds the package it
// was asked to run stops the build and leaves nothing behind (the build
// directory and a half-built image were left before); mote exits 130.
func TestRunInterruptedBuild(t *testing.T) {
	tmp := t.TempDir()
	// A cache of its own makes the build long enough to interrupt; it is
	// removed at the end, best effort.
	cache, err := os.MkdirTemp("", "mote-test-gocache-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(cache)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, moteBin, "run", "-t", "spt", "./examples/hello")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "GOCACHE="+cache)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Until the build directory exists: the build has begun.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(tmp, "mote-run-*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no build directory appeared\n%s", stderr.String())
		}
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("status %d, want 130\n%s", code, stderr.String())
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "mote-run-*")); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

// TestCacheCommand: mote cache ls lists the image copies in
// MOTE_IMAGE_CACHE and mote cache prune removes them.
func TestCacheCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	img, err := os.Open(moteBin) // any regular file will do as an image here
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	c, err := imagecache.Cache{Dir: dir}.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	env := []string{"MOTE_IMAGE_CACHE=" + dir}
	if got := moteEnv(t, env, "cache", "ls"); got.status != 0 || strings.Count(got.stdout, "\n") != 1 || !strings.Contains(got.stdout, "MiB\tlast used ") {
		t.Fatalf("ls: status %d, stdout %q, stderr %q", got.status, got.stdout, got.stderr)
	}
	if got := moteEnv(t, env, "cache", "prune"); got.status != 0 {
		t.Fatalf("prune: status %d, stderr %q", got.status, got.stderr)
	}
	if got := moteEnv(t, env, "cache", "ls"); got.status != 0 || got.stdout != "" {
		t.Fatalf("ls after prune: status %d, stdout %q", got.status, got.stdout)
	}
	if got := moteEnv(t, env, "cache", "sweep"); got.status != 2 {
		t.Errorf("cache sweep: status %d, want 2", got.status)
	}
}
