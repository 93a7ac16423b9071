package hvt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/guest/netstack"
	"github.com/moteos/mote/host/hvt"
	"github.com/moteos/mote/host/imagecache"
)

// These tests boot real Go programs (testdata/guests, and test binaries of
// the standard library) on KVM and compare what they do with the same
// binary run natively. Every guest runs with Strict set, so a system call
// outside the Mote ABI fails the test instead of hiding behind ENOSYS.

var (
	guestDir  string
	cacheDir  string // the image cache runHVT boots from, as mote run does
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	if reason := kvmMissing(); reason != "" {
		fmt.Fprintf(os.Stderr, "\n*** hvt: KVM TESTS SKIPPED: %s ***\n\n", reason)
	}
	dir, err := os.MkdirTemp("", "mote-hvt-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = dir
	// In tmpfs, where mote keeps it, when there is one.
	shm := "/dev/shm"
	if _, err := os.Stat(shm); err != nil {
		shm = ""
	}
	if cacheDir, err = os.MkdirTemp(shm, "mote-hvt-test-cache-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(cacheDir)
	os.Exit(code)
}

// kvmMissing says why KVM tests cannot run here, or "".
func kvmMissing() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("/dev/kvm is not usable (%v)", err)
	}
	f.Close()
	return ""
}

func needKVM(t *testing.T) {
	t.Helper()
	if reason := kvmMissing(); reason != "" {
		t.Skipf("SKIPPED LOUDLY: %s", reason)
	}
}

// prebuiltGuests is where the guests are already built when the tests run
// where there is no Go toolchain (internal/nestedkvm's virtual machine):
// each testdata/guests program by its name, hello-arm64, and each standard
// library test binary as PKG.test with / replaced by _.
var prebuiltGuests = os.Getenv("MOTE_TEST_GUESTS")

// guest builds the static guest binaries once, as mote build -t hvt does,
// and returns the path of the one named.
func guest(t *testing.T, name string) string {
	t.Helper()
	if prebuiltGuests != "" {
		return filepath.Join(prebuiltGuests, name)
	}
	buildOnce.Do(func() {
		ents, err := os.ReadDir("testdata/guests")
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-trimpath", "-o", guestDir + "/"}
		for _, e := range ents {
			args = append(args, "./testdata/guests/"+e.Name())
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building guests: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(guestDir, name)
}

type result struct {
	status         int
	err            error
	stdout, stderr string
}

func runHVT(t *testing.T, cfg hvt.Config) result {
	t.Helper()
	var out, errb syncBuffer
	cfg.Stdout, cfg.Stderr, cfg.Strict = &out, &errb, true
	if cfg.ImageCache == "" {
		cfg.ImageCache = cacheDir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status, err := hvt.Run(ctx, cfg)
	return result{status, err, out.String(), errb.String()}
}

func runNative(t *testing.T, path string, args []string, env []string) result {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{status: status, stdout: out.String(), stderr: errb.String()}
}

// TestVectorStateSurvivesSignals holds distinctive values in every vector
// register the guest's CPU offers while signals interrupt it, and requires
// every value back. What was checked depends on the host's CPU and what its
// KVM offers: the test says what it could not check.
func TestVectorStateSurvivesSignals(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "vectors"), CPUs: 2})
	if got.err != nil || got.status != 0 || !strings.Contains(got.stdout, "all vector registers intact") {
		t.Fatalf("status %d err %v\nstdout:\n%s\nstderr:\n%s", got.status, got.err, got.stdout, got.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(got.stdout), "\n") {
		if strings.HasPrefix(line, "no ") {
			fmt.Fprintf(os.Stderr, "*** hvt: VECTOR CHECK LIMITED ON THIS HOST: %s ***\n", line)
		}
		t.Log(line)
	}
}

// TestAltStackChangeIsWholeForSignals switches a thread's alternate
// signal stack through the shim, as the runtime's rewritten sites do,
// while signals arrive: each frame must be written on one whole stack,
// never on the old stack's address with the new one's size.
func TestAltStackChangeIsWholeForSignals(t *testing.T) {
	needKVM(t)
	entry := fmt.Sprintf("%#x", hvt.ShimEntry(131))
	got := runHVT(t, hvt.Config{Image: guest(t, "altstack"), Args: []string{entry}, CPUs: 2})
	if got.err != nil || got.status != 0 {
		t.Fatalf("status %d err %v\nstdout:\n%s\nstderr:\n%s", got.status, got.err, got.stdout, got.stderr)
	}
}

// emulated reports whether the tests run on a KVM that QEMU emulates
// (internal/nestedkvm sets MOTE_TEST_EMULATED), tens of times slower than
// hardware, where what depends on time differs.
func emulated() bool { return os.Getenv("MOTE_TEST_EMULATED") != "" }

// gcstressMemory is gcstress's -m: 32 MiB, but 64 MiB under emulation.
// There the guest's pages ever touched (the tender binds guest memory
// 2 MiB at a time and never unbinds it) reached 31 MiB of 32 in 2 runs of
// 3, its heap being 7 MiB at most: the Go allocator's footprint grows
// while the collector runs slowly, which says nothing about the tender.
func gcstressMemory() uint64 {
	if emulated() {
		return 64 << 20
	}
	return 32 << 20
}

// TestSignalStress runs sigstress: threads made and ended, recovered
// faults, signals to threads and to the process, GC preemption,
// alternate-stack changes and XMM checks, all at once, on two CPUs.
func TestSignalStress(t *testing.T) {
	needKVM(t)
	if emulated() {
		// Seen there: 2 runs in 8 ended in a triple fault whose state is
		// lost (SVM resets a vCPU on shutdown), once followed by a panic
		// of the emulated machine's own kernel ("corrupted stack end
		// detected inside scheduler"). Which of QEMU and the tender is at
		// fault is not known: on hardware KVM this test must pass.
		fmt.Fprintln(os.Stderr, "*** hvt: TestSignalStress SKIPPED under emulation: see its comment ***")
		t.Skip("SKIPPED LOUDLY: under QEMU's emulated SVM this stress ended in triple faults of unknown cause; it runs on hardware KVM")
	}
	path := guest(t, "sigstress")
	native := runNative(t, path, nil, nil)
	got := runHVT(t, hvt.Config{Image: path, CPUs: 2})
	if got.err != nil || got.status != 0 || got.stdout != native.stdout {
		t.Fatalf("status %d err %v, stdout %q (native %q)\nstderr:\n%s", got.status, got.err, got.stdout, native.stdout, got.stderr)
	}
}

// TestGuestsMatchNative runs each program natively and under hvt and
// requires the same standard output and exit status.
func TestGuestsMatchNative(t *testing.T) {
	needKVM(t)
	for _, c := range []struct {
		name string
		args []string
		env  []string
		mem  uint64
		cpus int
	}{
		{name: "hello"},
		{name: "hello", args: []string{"7"}},
		{name: "goroutines"},
		{name: "gcstress", mem: gcstressMemory()}, // allocates >400 MiB in a 32 MiB guest
		{name: "timers"},
		{name: "preempt"},
		{name: "nilderef"},
		{name: "faultrace", cpus: 2},
		{name: "cryptorand"},
		{name: "clockreads"},
		{name: "argsenv", args: []string{"one", "two words"}, env: []string{"MOTE_TEST_A=alpha", "MOTE_TEST_B="}},
		{name: "panic"},
		{name: "tzdata"},
		{name: "identity"},
		{name: "abiconform"}, // calls whose answers programs see: Linux's, or a failing line
	} {
		t.Run(strings.Join(append([]string{c.name}, c.args...), "_"), func(t *testing.T) {
			path := guest(t, c.name)
			native := runNative(t, path, c.args, c.env)
			got := runHVT(t, hvt.Config{Image: path, Args: c.args, Env: c.env, Memory: c.mem, CPUs: c.cpus})
			if got.err != nil {
				t.Fatalf("hvt: %v\nstderr:\n%s", got.err, got.stderr)
			}
			if got.status != native.status || got.stdout != native.stdout {
				t.Errorf("hvt: status %d, stdout:\n%s\nnative: status %d, stdout:\n%s\nhvt stderr:\n%s",
					got.status, got.stdout, native.status, native.stdout, got.stderr)
			}
		})
	}
}

func TestPanicExitsTwoWithRuntimeMessage(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "panic")})
	if got.status != 2 || got.err != nil {
		t.Fatalf("status %d, err %v; want 2, nil", got.status, got.err)
	}
	for _, want := range []string{"panic: deliberate panic from a Mote guest", "main.main()", "goroutine 1 [running]"} {
		if !strings.Contains(got.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got.stderr)
		}
	}
}

func TestParallelOnTwoCPUs(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "parallel"), CPUs: 2})
	want := "NumCPU: 2 GOMAXPROCS: 2\nran in parallel: true\n"
	if got.err != nil || got.stdout != want {
		t.Fatalf("err %v, stdout:\n%s\nwant:\n%s\nstderr:\n%s", got.err, got.stdout, want, got.stderr)
	}
}

// TestProfileFindsTheBusyFunction profiles a guest that spends its time
// in one function: the profile, read back with pprof's own parser, must be
// symbolized and put most of its samples there.
func TestProfileFindsTheBusyFunction(t *testing.T) {
	needKVM(t)
	var out bytes.Buffer
	got := runHVT(t, hvt.Config{Image: guest(t, "burn"), Profile: &out})
	if got.err != nil || got.stdout != "burnt true\n" {
		t.Fatalf("err %v, stdout %q\n%s", got.err, got.stdout, got.stderr)
	}
	raw := out.Bytes()
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the profile does not parse: %v", err)
	}
	// go build -pgo takes it: the compiler's own reader finds the call
	// from main.main to main.burn.
	in := filepath.Join(t.TempDir(), "burn.pprof")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("go"); err != nil && prebuiltGuests != "" {
		t.Log("no go command here: go tool preprofile not tried")
	} else if pre, err := exec.Command("go", "tool", "preprofile", "-i", in).CombinedOutput(); err != nil || !bytes.Contains(pre, []byte("main.main\nmain.burn\n")) {
		t.Errorf("go tool preprofile: %v\n%s", err, pre)
	}
	var all, burn int64
	for _, s := range p.Sample {
		all += s.Value[0]
		if l := s.Location[0].Line; len(l) > 0 && l[0].Function.Name == "main.burn" {
			burn += s.Value[0]
			// Where `func burn` is in testdata/guests/burn/main.go:
			// go build -pgo needs it.
			if l[0].Function.StartLine != 8 {
				t.Errorf("main.burn starts at line %d, want 8", l[0].Function.StartLine)
			}
		}
		if top := s.Location[len(s.Location)-1].Line; len(top) == 0 {
			t.Errorf("a sample's outermost frame is not symbolized: %v", s)
		}
	}
	// The guest runs for most of a second at 100 samples per second, 80%
	// of them in burn; under emulation the runtime's start (page faults,
	// exits) weighs more, and 78% was seen: there a majority.
	share := int64(8)
	if emulated() {
		share = 6
	}
	if all < 10 || burn*10 < all*share {
		t.Fatalf("%d samples, %d in main.burn; want most of at least 10 there\n%s", all, burn, p)
	}
}

func TestOutOfMemoryIsReported(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "oom"), Memory: 32 << 20})
	var ee *hvt.ExitError
	if !errors.As(got.err, &ee) || got.status != hvt.ExitOOM || ee.ExitCode() != hvt.ExitOOM {
		t.Fatalf("status %d, err %v; want %d and an ExitError", got.status, got.err, hvt.ExitOOM)
	}
	for _, want := range []string{"out of memory", "32 MiB", "main.main", "oom/main.go"} {
		if !strings.Contains(ee.Report, want) {
			t.Errorf("report lacks %q:\n%s", want, ee.Report)
		}
	}
}

// TestRefusedMemoryIsNotTheCause: a guest that was refused memory once and
// then died of something else is reported with its own status, not as
// out of memory (it was, before).
func TestRefusedMemoryIsNotTheCause(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "refusedthenpanic"), Memory: 32 << 20})
	if got.err != nil || got.status != 2 || !strings.Contains(got.stdout, "64 GiB mapping: cannot allocate memory") ||
		!strings.Contains(got.stderr, "something else went wrong") || !strings.Contains(got.stderr, "refused the guest memory beyond -m 32 MiB") {
		t.Errorf("status %d, err %v\nstdout:\n%s\nstderr:\n%s", got.status, got.err, got.stdout, got.stderr)
	}
}

// TestBSSCountsAgainstMemory: a program's .bss is its memory. 64 MiB of
// it under -m 32M is refused before boot; under -m 96M it runs, and what is
// left for the heap is what -m leaves after it. The .bss was bound outside
// -m before: a guest dirtied 1.9 GB under -m 16M.
func TestBSSCountsAgainstMemory(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "bigbss"), Memory: 32 << 20})
	if got.err == nil || !strings.Contains(got.err.Error(), "more than the guest's memory (-m 32 MiB)") {
		t.Errorf("-m 32M: status %d, err %v; want the image refused", got.status, got.err)
	}
	got = runHVT(t, hvt.Config{Image: guest(t, "bigbss"), Memory: 96 << 20})
	if got.err != nil || got.status != 0 || !strings.Contains(got.stdout, "touched 64 MiB of .bss") {
		t.Fatalf("-m 96M: status %d, err %v, stdout %q\nstderr:\n%s", got.status, got.err, got.stdout, tail(got.stderr, 2000))
	}
}

// TestBlockedWritesHoldNoCopies: 48 threads blocked in 1 MiB writes to a
// full pipe make the tender hold no copy of their buffers (it writes from
// guest memory). It held one per call before: ~1 GB for 1000 threads of a
// small guest.
func TestBlockedWritesHoldNoCopies(t *testing.T) {
	needKVM(t)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := hvt.Run(ctx, hvt.Config{Image: guest(t, "blockedwrites"), Stdout: &out, Stderr: &errb, ImageCache: cacheDir})
		done <- err
	}()
	for !strings.Contains(out.String(), "blocked") {
		select {
		case err := <-done:
			t.Fatalf("the guest ended: %v\n%s", err, tail(errb.String(), 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	cancel()
	<-done
	if grown := int64(during.HeapInuse) - int64(before.HeapInuse); grown > 16<<20 {
		t.Errorf("the tender's heap grew by %d MiB while 48 MiB of writes were blocked", grown>>20)
	}
}

func TestUnhandledFaultIsReportedWithBacktrace(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "crash")})
	var ee *hvt.ExitError
	if !errors.As(got.err, &ee) || got.status != hvt.ExitCrash {
		t.Fatalf("status %d, err %v; want %d", got.status, got.err, hvt.ExitCrash)
	}
	for _, want := range []string{"page fault at 0x0", "rip ", "cr2 ", "main.crashHere", "main.main", "crash/main.go:15", "last system calls"} {
		if !strings.Contains(ee.Report, want) {
			t.Errorf("report lacks %q:\n%s", want, ee.Report)
		}
	}
}

// TestImageCopyStaysIntact boots a guest twice from one shared copy of
// its image while the guest tries to change its own text: through the
// host, by mprotect and by a store. All three fail, and the copy the next
// instance boots from is still the image, byte for byte, although the
// tender rewrote system-call sites in the text of each instance.
func TestImageCopyStaysIntact(t *testing.T) {
	needKVM(t)
	img := guest(t, "textwrite")
	dir := filepath.Join(cacheDir, t.Name()) // a cache of its own, made 0700 at first use
	want := "getrandom into text: bad address\nmprotect text writable: invalid argument\nstore into text: true\ntext intact: true\n"
	for i := 0; i < 2; i++ {
		got := runHVT(t, hvt.Config{Image: img, ImageCache: dir})
		if got.status != 0 || got.stdout != want {
			t.Fatalf("run %d: status %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", i, got.status, got.stdout, want, tail(got.stderr, 2000))
		}
	}
	copies, err := imagecache.Cache{Dir: dir}.Copies()
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 1 {
		t.Fatalf("cache holds %v, want one copy shared by both runs", copies)
	}
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(copies[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, cp) {
		for i := range orig {
			if orig[i] != cp[i] {
				t.Fatalf("the shared copy differs from the image at offset %#x", i)
			}
		}
	}
}

func TestStrictKillsCallOutsideABI(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "forbidden")})
	var ee *hvt.ExitError
	if !errors.As(got.err, &ee) || got.status != hvt.ExitBadSyscall {
		t.Fatalf("status %d, err %v; want %d", got.status, got.err, hvt.ExitBadSyscall)
	}
	for _, want := range []string{"socket (nr 41", "outside the Mote ABI", "main.main"} {
		if !strings.Contains(ee.Report, want) {
			t.Errorf("report lacks %q:\n%s", want, ee.Report)
		}
	}
	if got.stdout != "asking for a socket\n" {
		t.Errorf("stdout %q", got.stdout)
	}
}

func TestNonStrictAnswersENOSYSAndReports(t *testing.T) {
	needKVM(t)
	var out, errb syncBuffer
	status, err := hvt.Run(context.Background(), hvt.Config{Image: guest(t, "forbidden"), Stdout: &out, Stderr: &errb})
	if err != nil || status != 0 {
		t.Fatalf("status %d, err %v", status, err)
	}
	if !strings.Contains(out.String(), "socket: function not implemented") {
		t.Errorf("stdout %q", out.String())
	}
	if !strings.Contains(errb.String(), "outside the Mote ABI") || !strings.Contains(errb.String(), "socket (nr 41) ×1") {
		t.Errorf("stderr lacks the report: %q", errb.String())
	}
}

func TestClockReadsCostNoExit(t *testing.T) {
	needKVM(t)
	var stats syncBuffer
	got := runHVT(t, hvt.Config{Image: guest(t, "clockreads"), Stats: &stats})
	if got.err != nil || got.status != 0 {
		t.Fatalf("status %d err %v", got.status, got.err)
	}
	// 200000 clock reads: any clock_gettime exit would show in the table.
	if strings.Contains(stats.String(), "clock_gettime") {
		t.Errorf("clock reads reached the tender:\n%s", stats.String())
	}
	if !strings.Contains(stats.String(), "mmap") {
		t.Errorf("stats table missing:\n%s", stats.String())
	}
}

// signalGraceful boots the graceful guest, waits until it is ready, sends
// this process sig (which the tender forwards) and returns how the guest
// ended, its output and the names of this process's threads while it ran.
func signalGraceful(t *testing.T, sig syscall.Signal) (result, string, []string) {
	t.Helper()
	needKVM(t)
	out := &syncBuffer{ready: make(chan struct{}), mark: "ready\n"}
	done := make(chan result)
	go func() {
		var errb syncBuffer
		status, err := hvt.Run(context.Background(), hvt.Config{Image: guest(t, "graceful"), Stdout: out, Stderr: &errb, Strict: true})
		done <- result{status: status, err: err, stderr: errb.String()}
	}()
	select {
	case <-out.ready:
	case <-time.After(time.Minute):
		t.Fatal("guest never became ready")
	}
	var names []string
	tasks, _ := filepath.Glob("/proc/self/task/*/comm")
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil {
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	syscall.Kill(os.Getpid(), sig)
	got := <-done
	return got, out.String(), names
}

// TestHostSignalIsForwarded sends SIGTERM to this process while a guest
// waits for it: the tender forwards it and the guest shuts down cleanly.
// The guest's threads ran on host threads named for them.
func TestHostSignalIsForwarded(t *testing.T) {
	got, stdout, threads := signalGraceful(t, syscall.SIGTERM)
	if got.err != nil || got.status != 3 || stdout != "ready\ngot terminated - shutting down\n" {
		t.Fatalf("status %d err %v stdout %q stderr %q", got.status, got.err, stdout, got.stderr)
	}
	if !slices.ContainsFunc(threads, func(n string) bool { return strings.HasPrefix(n, "mote:vcpu:t") }) {
		t.Errorf("no host thread named mote:vcpu:tN among %q", threads)
	}
}

// TestSIGQUITDumpsGuestGoroutines: SIGQUIT to the tender reaches the
// guest, whose runtime prints its goroutines and exits 2, as a Go process
// does.
func TestSIGQUITDumpsGuestGoroutines(t *testing.T) {
	got, _, _ := signalGraceful(t, syscall.SIGQUIT)
	if got.status != 2 || !strings.Contains(got.stderr, "SIGQUIT: quit") || !strings.Contains(got.stderr, "main.main()") {
		t.Fatalf("status %d err %v stderr:\n%s", got.status, got.err, got.stderr)
	}
}

func TestTooManyNICsRefused(t *testing.T) {
	needKVM(t)
	nics := make([]hvt.NIC, 65)
	for i := range nics {
		nics[i] = hvt.NIC{NIC: abi.NIC{Name: fmt.Sprintf("net%d", i), MAC: "02:00:00:00:00:01", MTU: 1500}, HostFD: -1}
	}
	status, err := hvt.Run(context.Background(), hvt.Config{Image: guest(t, "hello"), NICs: nics})
	if status != hvt.ExitTender || err == nil || !strings.Contains(err.Error(), "65 NICs: at most 64") {
		t.Fatalf("status %d, err %v", status, err)
	}
}

func TestBadImagesRefusedBeforeBoot(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hello := guest(t, "hello")
	data, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	arm := filepath.Join(prebuiltGuests, "hello-arm64")
	if prebuiltGuests == "" {
		arm = filepath.Join(dir, "hello-arm64")
		cmd := exec.Command("go", "build", "-o", arm, "./testdata/guests/hello")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	cases := []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing"), "no such file"},
		{write("text", []byte("#!/bin/sh\necho hi\n")), "not an ELF file"},
		{write("short", data[:40]), "truncated ELF header"},
		{write("truncated", data[:len(data)/3]), "truncated"},
		{arm, "want x86-64"},
		{dir, "not a regular file"},
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		cases = append(cases, struct{ path, want string }{sh, "dynamically linked"})
	}
	for _, c := range cases {
		got := runHVT(t, hvt.Config{Image: c.path})
		if got.status != hvt.ExitTender || got.err == nil || !strings.Contains(got.err.Error(), c.want) {
			t.Errorf("%s: status %d, err %v; want %d and %q", filepath.Base(c.path), got.status, got.err, hvt.ExitTender, c.want)
		}
	}
}

// TestStdlibTests runs test binaries of the standard library inside hvt
// (testdata/stdlib.txt lists them).
func TestStdlibTests(t *testing.T) {
	needKVM(t)
	if testing.Short() {
		t.Skip("builds standard library test binaries")
	}
	for _, c := range stdlibTests(t) {
		t.Run(c.pkg, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(guestDir, strings.ReplaceAll(c.pkg, "/", "_")+".test")
			if prebuiltGuests != "" {
				bin = filepath.Join(prebuiltGuests, filepath.Base(bin))
			} else {
				cmd := exec.Command("go", "test", "-c", "-o", bin, c.pkg)
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			}
			args := []string{"-test.short", "-test.v"}
			if c.skip != "" {
				args = append(args, "-test.skip", c.skip)
			}
			got := runHVT(t, hvt.Config{Image: bin, Args: args, Memory: 512 << 20, CPUs: 2})
			if got.err != nil || got.status != 0 || !strings.HasSuffix(strings.TrimSpace(got.stdout), "PASS") {
				t.Fatalf("status %d err %v\n%s\n%s", got.status, got.err, tail(got.stdout, 40), got.stderr)
			}
		})
	}
}

// stdlibTests reads testdata/stdlib.txt.
func stdlibTests(t *testing.T) []struct{ pkg, skip string } {
	b, err := os.ReadFile("testdata/stdlib.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cs []struct{ pkg, skip string }
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		c := struct{ pkg, skip string }{pkg: f[0]}
		if len(f) > 1 {
			c.skip = f[1]
		}
		cs = append(cs, c)
	}
	return cs
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for the tender's threads; if ready is
// set it is closed once the output contains mark.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready chan struct{}
	mark  string
	fired bool
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.ready != nil && !s.fired && strings.Contains(s.b.String(), s.mark) {
		s.fired = true
		close(s.ready)
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNICCarriesHTTP gives a guest a NIC whose other end is a netstack in
// this process, and fetches pages from the guest's HTTP server over it.
func TestNICCarriesHTTP(t *testing.T) {
	needKVM(t)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host, err := netstack.New([]abi.NIC{{Name: "host0", FD: fds[1], MAC: "02:00:00:00:00:02", MTU: 1500, Addr: "10.0.0.2/24"}}, netstack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	out := &syncBuffer{ready: make(chan struct{}), mark: "serving\n"}
	done := make(chan result, 1)
	go func() {
		var errb syncBuffer
		status, err := hvt.Run(context.Background(), hvt.Config{
			Image: guest(t, "nethttp"), Stdout: out, Stderr: &errb, Strict: true,
			NICs: []hvt.NIC{{NIC: abi.NIC{Name: "net0", MAC: "02:00:00:00:00:01", MTU: 1500, Addr: "10.0.0.1/24"}, HostFD: fds[0]}},
		})
		done <- result{status: status, err: err, stderr: errb.String()}
	}()
	select {
	case <-out.ready:
	case r := <-done:
		t.Fatalf("guest ended early: %d %v\n%s", r.status, r.err, r.stderr)
	case <-time.After(time.Minute):
		t.Fatal("guest never served")
	}
	// The vCPU, the guest's poller and the device thread live in system
	// calls; the tender keeps Ps for them on top of the host's (host/procs),
	// or its other goroutines wait for sysmon.
	if got, least := runtime.GOMAXPROCS(0), 1+1+2+1; got < least {
		t.Errorf("GOMAXPROCS %d with a running guest and a NIC, want at least %d", got, least)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: host.DialContext}, Timeout: 20 * time.Second}
	for i := 0; i < 10; i++ {
		resp, err := hc.Get(fmt.Sprintf("http://10.0.0.1/page%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("guest says hello to /page%d", i); string(body) != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
	hc.Get("http://10.0.0.1/bye")
	r := <-done
	if r.err != nil || r.status != 0 {
		t.Fatalf("status %d, err %v\n%s", r.status, r.err, r.stderr)
	}
}

// TestPortIOFaults: `out` from the program faults as on Linux (SIGSEGV,
// which the guest recovers from), whatever the port. With IOPL 3 it had
// exited to the tender, which took port 14 for a page fault and 0x80 for a
// system call.
func TestPortIOFaults(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "portio")})
	const fault = ": runtime error: invalid memory address or nil pointer dereference\n"
	want := "out $14 (page fault)" + fault + "out $13 (general protection)" + fault +
		"out $0x80" + fault + "out $0xff" + fault + "still running\n"
	if got.err != nil || got.status != 0 || got.stdout != want {
		t.Fatalf("status %d, err %v, stdout:\n%s\nwant:\n%s\nstderr:\n%s", got.status, got.err, got.stdout, want, tail(got.stderr, 2000))
	}
}

// TestGuestCannotMapOverTheTender: mmap, madvise, munmap and mprotect of
// the tender's pages (the SYSCALL entry, the MMIO doorbell) fail with
// EINVAL, as over the image, the doorbell passed as a buffer is EFAULT,
// and the guest goes on. Before, madvise(MADV_DONTNEED) of the doorbell
// made the tender slice past guest RAM, and write(1, doorbell, 1) made it
// read MMIO as memory: both crashed it. Mappings are also capped, as
// Linux caps them, so that a guest cannot grow the tender's area list
// without bound.
func TestGuestCannotMapOverTheTender(t *testing.T) {
	needKVM(t)
	got := runHVT(t, hvt.Config{Image: guest(t, "mapkernel"), Args: []string{"cap"}})
	want := "mmap fixed over the doorbell: invalid argument\n" +
		"madvise the doorbell away: invalid argument\n" +
		"munmap the entry and doorbell pages: invalid argument\n" +
		"mprotect the entry page: invalid argument\n" +
		"mmap with a hint at the entry page placed elsewhere: true\n" +
		"write from the doorbell: bad address\n" +
		"futex on the doorbell: bad address\n" +
		"system calls still answered: true\n" +
		"mappings refused after 4000 or more: cannot allocate memory\n"
	if got.err != nil || got.status != 0 || got.stdout != want {
		t.Fatalf("status %d, err %v, stdout:\n%s\nwant:\n%s\nstderr:\n%s", got.status, got.err, got.stdout, want, tail(got.stderr, 2000))
	}
}
