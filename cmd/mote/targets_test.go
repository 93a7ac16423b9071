package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// One table of real Go programs (host/hvt/testdata/guests), run natively
// and through mote on every confining target (hvt, spt) with --strict:
// the same standard output and exit status everywhere.

var (
	guestsOnce sync.Once
	guestsErr  error
)

func guestBinary(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(tmpDir, "guests")
	guestsOnce.Do(func() {
		os.MkdirAll(dir, 0o755)
		cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./host/hvt/testdata/guests/...")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestsErr = fmt.Errorf("building guests: %v\n%s", err, out)
		}
	})
	if guestsErr != nil {
		t.Fatal(guestsErr)
	}
	return filepath.Join(dir, name)
}

// confiningTargets are the targets that confine a guest: spt, and hvt
// where KVM is (said loudly where it is not).
func confiningTargets(t *testing.T) []string {
	targets := []string{"spt"}
	if kvmOK() {
		targets = append(targets, "hvt")
	} else {
		t.Log("SKIPPED LOUDLY: hvt cases need /dev/kvm")
	}
	return targets
}

func TestGuestTable(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		mem  string
	}{
		{name: "hello"},
		{name: "hello", args: []string{"5"}},
		{name: "goroutines"},
		{name: "gcstress", mem: "32M"},
		{name: "timers"},
		{name: "preempt"},
		{name: "nilderef"},
		{name: "cryptorand"},
		{name: "clockreads"},
		{name: "argsenv", args: []string{"a", "b c"}},
		{name: "panic"},
		{name: "tzdata"},
		{name: "identity"},
		{name: "abiconform"}, // calls whose answers programs see: Linux's, or a failing line
	} {
		bin := guestBinary(t, c.name)
		nat := exec.Command(bin, c.args...)
		want, _ := nat.Output()
		wantStatus := nat.ProcessState.ExitCode()
		for _, target := range confiningTargets(t) {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				args := []string{"run", "-t", target, "--strict"}
				if c.mem != "" {
					args = append(args, "-m", c.mem)
				}
				args = append(append(args, bin, "--"), c.args...)
				got := mote(t, args...)
				if got.status != wantStatus || got.stdout != string(want) {
					t.Errorf("status %d, stdout:\n%s\nnative: status %d, stdout:\n%s\nstderr:\n%s", got.status, got.stdout, wantStatus, want, got.stderr)
				}
			})
		}
	}
}

// TestGuestGCSettings: a guest's collector gets GOMEMLIMIT (¾ of -m) and
// Go's own GOGC by default on every confining target, and declared values
// win.
func TestGuestGCSettings(t *testing.T) {
	bin := guestBinary(t, "gcsettings")
	for _, target := range confiningTargets(t) {
		for _, c := range []struct{ env, want string }{
			{"", "GOGC=100 GOMEMLIMIT=25165824\n"},
			{"GOGC=50", "GOGC=50 GOMEMLIMIT=25165824\n"},
			{"GOMEMLIMIT=1000000", "GOGC=100 GOMEMLIMIT=1000000\n"},
		} {
			args := []string{"run", "-t", target, "-m", "32M"}
			if c.env != "" {
				args = append(args, "--env", c.env)
			}
			got := mote(t, append(args, bin)...)
			if got.status != 0 || got.stdout != c.want {
				t.Errorf("%s %q: status %d, stdout %q, want %q\nstderr:\n%s", target, c.env, got.status, got.stdout, c.want, got.stderr)
			}
		}
	}
}

// TestConfinementStopsEscapes: raw system calls outside the ABI stop the
// guest with a report naming the call, on every confining target.
func TestConfinementStopsEscapes(t *testing.T) {
	bin := guestBinary(t, "escape")
	for _, target := range confiningTargets(t) {
		for _, try := range []struct{ arg, name string }{
			{"open", "open (nr 2"}, {"socket", "socket (nr 41"}, {"execve", "execve (nr 59"},
			{"ptrace", "ptrace (nr 101"}, {"execveat", "execveat (nr 322"}, {"mmapfd", "mmap"}, {"fork", "fork (nr 57"},
			{"raisecore", "prlimit64 (nr 302"},
		} {
			if target == "hvt" && try.arg == "mmapfd" {
				continue // hvt answers ENODEV: nothing is mapped from a descriptor, and the guest goes on
			}
			if target == "hvt" && try.arg == "raisecore" {
				continue // hvt writes no core file whatever the limit; spt's kernel would
			}
			got := mote(t, "run", "-t", target, "--strict", bin, "--", try.arg)
			if got.status != 159 || !strings.Contains(got.stderr, try.name) || !strings.Contains(got.stderr, "outside the Mote ABI") || strings.Contains(got.stdout, "still here") {
				t.Errorf("%s %s: status %d\nstdout %q\nstderr %q", target, try.arg, got.status, got.stdout, got.stderr)
			}
		}
	}
	// spt's NICs are rings in a memory file the guest maps: the filter
	// lets it map that file, never executable, and no other descriptor.
	for _, try := range []string{"mmapringexec", "mmapnotify"} {
		got := mote(t, "run", "-t", "spt", "--strict", "--net", "user", bin, "--", try)
		if got.status != 159 || !strings.Contains(got.stderr, "mmap (nr 9") || strings.Contains(got.stdout, "still here") {
			t.Errorf("spt %s: status %d\nstdout %q\nstderr %q", try, got.status, got.stdout, got.stderr)
		}
	}
}

// A descriptor mote inherited without close-on-exec (one the user's shell
// left open, say) never reaches an spt guest: a review's guest read and
// appended to a host file through one.
func TestSPTGuestInheritsNoStrayDescriptor(t *testing.T) {
	bin := guestBinary(t, "escape")
	f, err := os.CreateTemp(t.TempDir(), "stray")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, moteBin, "run", "-t", "spt", bin, "--", "fds")
	cmd.Dir = "../.."
	cmd.ExtraFiles = []*os.File{f, f, f, f, f} // mote's 3-7, not close-on-exec
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "open descriptor") {
		t.Errorf("the guest has descriptors it was not given:\n%s", out)
	}
}

// startMote starts mote in the repository, for a test that looks at it
// from outside while it runs, and returns its first line of output. It
// is killed and waited for when the test ends, at the latest a minute on.
func startMote(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, moteBin, args...)
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); cancel() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	return cmd, line
}

// TestSPTGuestHoldsNoCapabilities: an spt guest holds no capability,
// even when mote runs as root, as the kernel reports it from outside.
func TestSPTGuestHoldsNoCapabilities(t *testing.T) {
	_, line := startMote(t, "run", "-t", "spt", guestBinary(t, "escape"), "--", "pid")
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d\n", &pid); err != nil {
		t.Fatalf("the guest's pid: %v (it said %q)", err, line)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("mote not run by root here: the check is weaker (there was little to drop)")
	}
	n := 0
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Cap") {
			n++
			if f := strings.Fields(line); len(f) != 2 || strings.Trim(f[1], "0") != "" {
				t.Errorf("guest %s", line)
			}
		}
	}
	if n != 5 {
		t.Errorf("%d capability lines in /proc/%d/status:\n%s", n, pid, status)
	}
}

// TestThreadsCapped: a guest has at most 1024 threads on hvt and spt;
// beyond, clone answers EAGAIN and the Go runtime stops the program with
// its own message. A review's spt guest made 3003.
func TestThreadsCapped(t *testing.T) {
	bin := guestBinary(t, "threads")
	for _, target := range confiningTargets(t) {
		got := mote(t, "run", "-t", target, bin, "--", "100")
		if got.status != 0 || got.stdout != "threads: 100\n" {
			t.Errorf("%s, 100 threads: status %d, stdout %q\nstderr:\n%s", target, got.status, got.stdout, tailOf(got.stderr))
		}
		got = mote(t, "run", "-t", target, bin, "--", "1500")
		if got.status != 2 || !strings.Contains(got.stderr, "failed to create new OS thread (have 1025 already; errno=11)") {
			t.Errorf("%s, 1500 threads: status %d, stdout %q\nstderr:\n%s", target, got.status, got.stdout, tailOf(got.stderr))
		}
		if target == "spt" && !strings.Contains(got.stderr, "mote: the guest reached 1024 threads") {
			t.Errorf("spt: no word from mote of the limit:\n%s", tailOf(got.stderr))
		}
	}
}

// TestSPTMemoryBounded: an spt guest that allocates without end stops at
// its RLIMIT_DATA, max(2 × -m, -m + 64 MiB), with the runtime's own "out
// of memory". A review's guest touched 2 GiB under -m 64M.
func TestSPTMemoryBounded(t *testing.T) {
	got := mote(t, "run", "-t", "spt", "-m", "32M", guestBinary(t, "oom"))
	if got.status != 2 || !strings.Contains(got.stderr, "fatal error: runtime: out of memory") {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", got.status, tailOf(got.stdout), tailOf(got.stderr))
	}
	var last int
	for _, l := range strings.Split(strings.TrimSpace(got.stdout), "\n") {
		fmt.Sscanf(l, "live MiB: %d", &last)
	}
	if last == 0 || last > 96 {
		t.Errorf("last reported %d MiB live, want some and at most 96\nstdout:\n%s\nstderr:\n%s", last, tailOf(got.stdout), tailOf(got.stderr))
	}
}

// tailOf is the end of a long output, for a failure's message.
func tailOf(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// TestSPTGuestGetsNoTerminal: run from a terminal, an spt guest writes
// to pipes that mote relays, not to the terminal itself: a review's guest
// read keystrokes through its stdout descriptor and left the terminal
// non-blocking for the shell.
func TestSPTGuestGetsNoTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: no pseudo-terminal to run mote on: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, moteBin, "run", "-t", "spt", guestBinary(t, "escape"), "--", "stdio")
	cmd.Dir = "../.."
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	io.Copy(&out, ptmx) // until EIO: no writer left
	want := "fd 1: readable false, pipe true (errno 0)\r\nfd 2: readable false, pipe true (errno 0)\r\n"
	if out.String() != want {
		t.Errorf("the guest's output descriptors:\n%q\nwant\n%q", out.String(), want)
	}
}

// TestSPTStoppedGuestEnds: a guest that stops itself with SIGSTOP does
// not hold mote: SIGTERM to mote reaches it (mote continues it), and it
// ends of that signal. Before, mote waited for ever and Ctrl-C and SIGTERM
// did nothing.
func TestSPTStoppedGuestEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, moteBin, "run", "-t", "spt", guestBinary(t, "escape"), "--", "stop")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "trying stop\n" {
		cmd.Process.Kill()
		t.Fatalf("first line %q", line)
	}
	time.Sleep(200 * time.Millisecond) // the guest stops itself
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("mote still waited for its stopped guest a minute later\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("status %d (%v), want %d: the guest ended by the SIGTERM passed on\n%s", code, err, 128+int(syscall.SIGTERM), stderr.String())
	}
}

// TestExecRefused: os/exec in a unikernel gets a plain Linux error and mote
// names the call, on every confining target; --strict stops the guest at
// the first call outside the ABI (Go's pidfd_open probe, before clone).
func TestExecRefused(t *testing.T) {
	bin := guestBinary(t, "escape")
	for _, target := range confiningTargets(t) {
		got := mote(t, "run", "-t", target, bin, "--", "exec")
		if got.status != 0 || got.stdout != "exec: fork/exec /bin/true: function not implemented\n" || !strings.Contains(got.stderr, "clone (nr 56)") {
			t.Errorf("%s: status %d, stdout %q\nstderr:\n%s", target, got.status, got.stdout, tailOf(got.stderr))
		}
		got = mote(t, "run", "-t", target, "--strict", bin, "--", "exec")
		if got.status != 159 || !strings.Contains(got.stderr, "outside the Mote ABI") {
			t.Errorf("%s --strict: status %d\nstderr:\n%s", target, got.status, tailOf(got.stderr))
		}
	}
}

// TestStdlibTestsOnSPT runs standard-library test binaries under spt with
// --strict, as host/hvt's TestStdlibTests does under hvt (the same skips:
// tests that need files, exec or sockets).
func TestStdlibTestsOnSPT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds standard library test binaries")
	}
	for _, c := range []struct{ pkg, skip string }{
		{"sync", "^(TestMutexMisuse|TestIssue76126|ExampleOnceValues)$"},
		{"strings", ""},
		{"encoding/json", "^TestHTTPDecoding$"},
		{"regexp", "^(TestRE2Search|TestRE2Exhaustive)$"},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			bin := filepath.Join(tmpDir, strings.ReplaceAll(c.pkg, "/", "_")+".test")
			cmd := exec.Command("go", "test", "-c", "-o", bin, c.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			args := []string{"run", "-t", "spt", "--strict", "-m", "512M", bin, "--", "-test.short"}
			if c.skip != "" {
				args = append(args, "-test.skip", c.skip)
			}
			got := mote(t, args...)
			if got.status != 0 || !strings.HasSuffix(strings.TrimSpace(got.stdout), "PASS") {
				t.Fatalf("status %d\n%s\n%s", got.status, got.stdout, got.stderr)
			}
		})
	}
}

// TestRootsAtFirstDial: a unikernel's TLS clients verify against the CA
// roots in its image, installed at the first outbound connection so that a
// server that never dials pays nothing for them.
func TestRootsAtFirstDial(t *testing.T) {
	bin := guestBinary(t, "roots")
	want := "before the first dial: 0\nafter it, more than 100: true\n"
	for _, target := range confiningTargets(t) {
		got := mote(t, "run", "-t", target, "--strict", "--net", "user", bin)
		if got.status != 0 || got.stdout != want {
			t.Errorf("%s: status %d, stdout %q, want %q\nstderr:\n%s", target, got.status, got.stdout, want, got.stderr)
		}
	}
}

// TestHostClocksRefused: clock ids that name another process's CPU clock
// or a descriptor's answer EINVAL on the confining targets; the process's
// own clocks work.
func TestHostClocksRefused(t *testing.T) {
	bin := guestBinary(t, "hostclock")
	want := "CPU clock of pid 1: invalid argument\nclock of descriptor 1: invalid argument\nmonotonic clock: <nil>\n"
	for _, target := range confiningTargets(t) {
		got := mote(t, "run", "-t", target, "--strict", bin)
		if got.status != 0 || got.stdout != want {
			t.Errorf("%s: status %d, stdout %q, want %q\nstderr:\n%s", target, got.status, got.stdout, want, got.stderr)
		}
	}
}

// A call outside the ABI that has a remedy gets it at exit, on every
// confining target.
func TestOutsideCallHints(t *testing.T) {
	bin := guestBinary(t, "escape")
	for _, target := range confiningTargets(t) {
		for _, c := range []struct{ arg, want string }{
			{"socket", "mote: the program opened a socket of the host's kind: build it with mote build"},
			{"fork", "mote: the program started another one"},
			{"ptrace", ""},
		} {
			got := mote(t, "run", "-t", target, bin, "--", c.arg)
			if !strings.Contains(got.stderr, "outside the Mote ABI") {
				t.Errorf("%s %s: no report: %q", target, c.arg, got.stderr)
			}
			if c.want != "" && !strings.Contains(got.stderr, c.want) {
				t.Errorf("%s %s: no hint: %q", target, c.arg, got.stderr)
			}
			if c.want == "" && strings.Count(got.stderr, "\nmote: ") > 0 {
				t.Errorf("%s %s: a hint where there is none to give: %q", target, c.arg, got.stderr)
			}
		}
	}
}

// TestTenderConfined: mote run's hvt tender runs its guest with
// no_new_privs and its seccomp filter on (host/confine), as the kernel
// reports it from outside.
func TestTenderConfined(t *testing.T) {
	needKVM(t)
	cmd, line := startMote(t, "run", "-t", "hvt", guestBinary(t, "graceful"))
	if line != "ready\n" {
		t.Fatalf("the guest said %q", line)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the tender's status lacks %q:\n%s", want, status)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
}
