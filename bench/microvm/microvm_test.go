package microvm

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootTimeout bounds one boot: under TCG the kernel reaches /init in about
// a second, so a minute means something is wrong.
const bootTimeout = 60 * time.Second

var (
	vmlinuxOnce sync.Once
	vmlinuxPath string
	vmlinuxErr  error
	tmpRoot     string
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "microvm-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// needKernel skips loudly without the Debian kernel and returns its paths.
func needKernel(t testing.TB) (bz, mods string) {
	t.Helper()
	bz, mods, err := DefaultKernel()
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: no Debian kernel: %v", err)
	}
	return bz, mods
}

// needBoot skips unless booting VMs is asked for and possible.
func needBoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED LOUDLY: boots a VM under TCG; not with -short")
	}
	if os.Getenv("MOTE_MICROVM_TESTS") != "1" {
		t.Skip("SKIPPED LOUDLY: boots a Linux VM under TCG (seconds of CPU); set MOTE_MICROVM_TESTS=1 to run")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("SKIPPED LOUDLY: qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
	}
	needKernel(t)
}

// vmlinux extracts the kernel once per test binary.
func vmlinux(t testing.TB) string {
	t.Helper()
	bz, _ := needKernel(t)
	vmlinuxOnce.Do(func() {
		vmlinuxPath = filepath.Join(tmpRoot, "vmlinux")
		vmlinuxErr = Kernel(bz, vmlinuxPath)
	})
	if vmlinuxErr != nil {
		t.Fatal(vmlinuxErr)
	}
	return vmlinuxPath
}

// buildExample builds examples/NAME statically into the test's directory.
func buildExample(t testing.TB, name string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./examples/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

var (
	initOnce sync.Once
	initPath string
	initErr  error
)

// microinit builds /init once per test binary.
func microinit(t testing.TB) string {
	t.Helper()
	initOnce.Do(func() {
		initPath = filepath.Join(tmpRoot, "init")
		initErr = BuildInit(initPath)
	})
	if initErr != nil {
		t.Fatal(initErr)
	}
	return initPath
}

func TestKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED LOUDLY: decompresses a 60 MB kernel; not with -short")
	}
	bz, _ := needKernel(t)
	out := vmlinux(t)
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// QEMU boots the ELF through its Xen PVH entry note (type 18).
	pvh := false
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, _ := io.ReadAll(p.Open())
		for len(b) >= 12 {
			nsz, dsz, typ := le32(b), le32(b[4:]), le32(b[8:])
			name := b[12:min(len(b), 12+int(nsz))]
			if typ == 18 && strings.HasPrefix(string(name), "Xen") {
				pvh = true
			}
			skip := 12 + align4(int(nsz)) + align4(int(dsz))
			if skip > len(b) {
				break
			}
			b = b[skip:]
		}
	}
	if !pvh {
		t.Error("vmlinux has no PVH entry note")
	}
	// A second call with an up-to-date output must not rewrite it.
	st, _ := os.Stat(out)
	if err := Kernel(bz, out); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(out); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("Kernel rewrote an up-to-date vmlinux")
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func align4(n int) int { return (n + 3) &^ 3 }

func TestResolveModules(t *testing.T) {
	_, dir := needKernel(t)
	got, err := ResolveModules(dir, []string{"virtio_mmio", "virtio-net"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".ko"))
	}
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	for _, n := range []string{"virtio_ring", "virtio", "virtio_mmio", "failover", "net_failover", "virtio_net"} {
		if _, ok := pos[n]; !ok {
			t.Fatalf("%s missing from %v", n, names)
		}
	}
	if len(names) != len(pos) {
		t.Errorf("duplicates in %v", names)
	}
	for _, d := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_mmio"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}} {
		if pos[d[0]] > pos[d[1]] {
			t.Errorf("%s after %s in %v", d[0], d[1], names)
		}
	}
	if _, err := ResolveModules(dir, []string{"no_such_module"}); err == nil {
		t.Error("unknown module accepted")
	}
}

// TestInitramfsLayout reads the archive back with a minimal newc reader.
func TestInitramfsLayout(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED LOUDLY: builds microinit; not with -short")
	}
	_, dir := needKernel(t)
	app := microinit(t) // any static x86-64 ELF will do as /app
	out := filepath.Join(t.TempDir(), "initrd")
	if err := (InitramfsConfig{Init: microinit(t), App: app, Modules: []string{"virtio_net"}, ModulesDir: dir}).Write(out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{}
	modes := map[string]uint64{}
	for off := 0; ; {
		if off+110 > len(data) || string(data[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(data[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, rmaj, rmin, nsz := field(1), field(6), field(9), field(10), field(11)
		name := string(data[off+110 : off+110+nsz-1])
		off = align4(off + 110 + nsz)
		if name == "TRAILER!!!" {
			break
		}
		entries[name] = data[off : off+size]
		modes[name] = uint64(mode)
		if name == "dev/console" && (rmaj != 5 || rmin != 1) {
			t.Errorf("dev/console is %d:%d", rmaj, rmin)
		}
		off = align4(off + size)
	}
	for _, n := range []string{"dev", "dev/console", "proc", "init", "app", "modules", "modules/order", "modules/virtio_net.ko"} {
		if _, ok := entries[n]; !ok {
			t.Errorf("%s missing", n)
		}
	}
	if modes["init"] != 0o100755 || modes["dev/console"] != 0o020600 {
		t.Errorf("modes: init %o, dev/console %o", modes["init"], modes["dev/console"])
	}
	order := strings.Fields(string(entries["modules/order"]))
	if len(order) == 0 || order[len(order)-1] != "virtio_net.ko" {
		t.Errorf("modules/order = %q", order)
	}
	for _, m := range order {
		if _, ok := entries["modules/"+m]; !ok {
			t.Errorf("modules/%s listed but absent", m)
		}
	}
}

func TestHostTSCkHz(t *testing.T) {
	k, err := HostTSCkHz()
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: %v", err)
	}
	if k < 100_000 || k > 10_000_000 {
		t.Errorf("HostTSCkHz = %d, not a plausible TSC frequency", k)
	}
	t.Logf("host TSC %d kHz", k)
}

func TestCommandLine(t *testing.T) {
	cmd := Command(Config{Kernel: "K", Initrd: "I", TSCkHz: 2_100_000, Net: NetUser,
		HostPort: 18080, GuestPort: 8080, Args: []string{"-addr", ":8080", "a b"}})
	got := strings.Join(cmd.Args, " ")
	for _, want := range []string{
		"-M microvm,pit=on,acpi=on", "-accel tcg -cpu max", "-m 256", "-smp 1", "-no-reboot", "-serial stdio",
		"-kernel K", "-initrd I",
		"console=ttyS0 panic=-1 quiet tsc_early_khz=2100000 mote.ip=10.0.2.15/24 mote.gw=10.0.2.2 -- -addr :8080 \"a b\"",
		"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:18080-:8080 -device virtio-net-device,netdev=n0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("command lacks %q:\n%s", want, got)
		}
	}
	cmd = Command(Config{Kernel: "K", TSCkHz: -1, Net: NetTap, Tap: "tap0", IP: "192.0.2.2/24"})
	got = strings.Join(cmd.Args, " ")
	if !strings.Contains(got, "-netdev tap,id=n0,ifname=tap0,script=no,downscript=no") ||
		!strings.Contains(got, "mote.ip=192.0.2.2/24") || strings.Contains(got, "tsc_early_khz") || strings.Contains(got, "mote.gw") {
		t.Errorf("tap command: %s", got)
	}
}

// syncBuffer collects QEMU's output and notes when a wanted string first
// appears.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	at   time.Time // when want appeared
}

func newSyncBuffer(want string) *syncBuffer { return &syncBuffer{want: want} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.at.IsZero() && b.want != "" && bytes.Contains(b.buf.Bytes(), []byte(b.want)) {
		b.at = now
	}
	return len(p), nil
}

// since returns how long after start want appeared (0: not yet).
func (b *syncBuffer) since(start time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at.IsZero() {
		return 0
	}
	return b.at.Sub(start).Round(time.Millisecond)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// vm is one running QEMU.
type vm struct {
	cmd   *exec.Cmd
	out   *syncBuffer
	start time.Time
	// exited is closed when QEMU has exited; err is then Wait's result.
	exited chan struct{}
	err    error
}

func boot(t testing.TB, cfg Config, want string) *vm {
	t.Helper()
	v := &vm{cmd: Command(cfg), out: newSyncBuffer(want), exited: make(chan struct{})}
	v.cmd.Stdout, v.cmd.Stderr = v.out, v.out
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { v.err = v.cmd.Wait(); close(v.exited) }()
	t.Cleanup(v.kill)
	return v
}

// kill ends this QEMU, by its PID, if it still runs.
func (v *vm) kill() {
	select {
	case <-v.exited:
		return
	default:
	}
	v.cmd.Process.Kill()
	select {
	case <-v.exited:
	case <-time.After(10 * time.Second):
	}
}

func TestBootHello(t *testing.T) {
	needBoot(t)
	kernel := vmlinux(t)
	hello := buildExample(t, "hello")
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := (InitramfsConfig{Init: microinit(t), App: hello}).Write(initrd); err != nil {
		t.Fatal(err)
	}
	const line = "hello from mote (target unix)"
	// -exit 3 checks that the arguments after "--" reach the app, and that
	// microinit reports its status and still powers off.
	v := boot(t, Config{Kernel: kernel, Initrd: initrd, MemoryMiB: 128, Args: []string{"-exit", "3"}}, line)
	select {
	case <-v.exited:
	case <-time.After(bootTimeout):
		t.Fatalf("QEMU did not exit within %v; console:\n%s", bootTimeout, v.out)
	}
	exited := time.Since(v.start).Round(time.Millisecond)
	if v.err != nil {
		t.Errorf("qemu: %v", v.err)
	}
	d := v.out.since(v.start)
	if d == 0 {
		t.Fatalf("no %q; console:\n%s", line, v.out)
	}
	t.Logf("first output after %v, QEMU exited after %v", d, exited)
	if out := v.out.String(); !strings.Contains(out, "microinit: /app: exit status 3") {
		t.Errorf("no exit status report from microinit; console:\n%s", out)
	} else if strings.Count(out, "microinit:") != 1 {
		t.Errorf("microinit complained; console:\n%s", out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP GETs url until it answers 200 or ctx ends. Until the guest's
// network is up, QEMU's user network accepts the host's connection but the
// request hangs, so one attempt at a time with a timeout would measure the
// timeout: a new attempt starts every 25 ms instead, each bounded to 2 s
// (at most 80 in flight), and the first answer wins.
func waitHTTP(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 128)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		go func() {
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			defer acancel()
			req, _ := http.NewRequestWithContext(actx, "GET", url, nil)
			// A fresh transport: no connection is shared or reused.
			resp, err := (&http.Transport{DisableKeepAlives: true}).RoundTrip(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %s", resp.Status)
			}
			results <- result{string(body), err}
		}()
	wait:
		for {
			select {
			case r := <-results:
				if r.err == nil {
					return r.body, nil
				}
				last = r.err
			case <-ctx.Done():
				return "", fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			case <-tick.C:
				break wait
			}
		}
	}
}

// bootHTTPD boots cfg (an httpd initramfs) with user networking and a
// forward from a free loopback port to the guest's 8080, and waits for
// its first answer; it returns the VM, the port and the time to that
// answer.
func bootHTTPD(t testing.TB, cfg Config) (*vm, int, time.Duration, error) {
	port := freePort(t)
	cfg.Net, cfg.HostPort, cfg.GuestPort, cfg.Args = NetUser, port, 8080, []string{"-addr", ":8080"}
	v := boot(t, cfg, "msg=serving")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	// Stop waiting early if QEMU dies (a panic, too little memory).
	go func() {
		select {
		case <-v.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	body, err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port))
	d := time.Since(v.start)
	if err == nil && len(body) == 0 {
		err = fmt.Errorf("empty body")
	}
	return v, port, d, err
}

func TestBootHTTPD(t *testing.T) {
	needBoot(t)
	kernel := vmlinux(t)
	httpd := buildExample(t, "httpd")
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := (InitramfsConfig{Init: microinit(t), App: httpd, Modules: []string{"virtio_mmio", "virtio_net"}}).Write(initrd); err != nil {
		t.Fatal(err)
	}
	v, port, d, err := bootHTTPD(t, Config{Kernel: kernel, Initrd: initrd, MemoryMiB: 256})
	if err != nil {
		v.kill()
		t.Fatalf("GET /: %v; console:\n%s", err, v.out)
	}
	t.Logf("first HTTP answer after %v (httpd logged \"serving\" after %v)", d.Round(time.Millisecond), v.out.since(v.start))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"service":"httpd"`) {
		t.Errorf("/api/info = %s", b)
	}
	v.kill()
}
