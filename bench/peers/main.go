// Command peers measures the same programs run each way a user could run
// them — a plain process, Mote's unix, spt and hvt targets, gVisor's runsc
// and a minimal Linux microVM — in one run on one machine: artifact size,
// start to first output, start to first HTTP answer, host memory and CPU of
// an idle instance, and the smallest guest RAM that serves. It writes the
// peers section of docs/benchmarks.md, its charts and a JSON record that
// bench/summary reads. bench/run builds what it needs and calls it.
//
//	peers -mote PATH -dir BUILD_DIR [-n 10] [-instances 10]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moteos/mote/bench/chart"
	"github.com/moteos/mote/bench/microvm"
	"github.com/moteos/mote/bench/probe"
	"github.com/moteos/mote/bench/procstat"
	"github.com/moteos/mote/bench/report"
	"github.com/moteos/mote/bench/runsc"
)

var (
	moteBin   = flag.String("mote", "", "the mote binary")
	dir       = flag.String("dir", "", "build directory: hello.plain, httpd.native (static host builds), hello.hvt, httpd.hvt (images)")
	doc       = flag.String("doc", "docs/benchmarks.md", "the page to update")
	results   = flag.String("results", "docs/results/peers.json", "where to write the results as JSON")
	img       = flag.String("img", "docs/img", "where to write the charts")
	n         = flag.Int("n", 10, "runs per start-up timing")
	instances = flag.Int("instances", 10, "idle instances measured together for memory and CPU")
	idleFor   = flag.Duration("idle", 30*time.Second, "how long idle CPU is measured")
)

// A way of running the programs.
type way struct {
	name string
	mote bool
	// hello and httpd return the command that runs the program (httpd on
	// 127.0.0.1:port) and a function that stops and cleans up after it.
	hello    func() (*exec.Cmd, func())
	httpd    func(port int) (*exec.Cmd, func())
	artifact func() (bytes int64, what string)
	// withRAM, when set, runs httpd in a guest of mib MiB, which serves
	// at maxRAM (the default) and is refused below minRAM.
	withRAM        func(port, mib int) (*exec.Cmd, func())
	minRAM, maxRAM int
	// startsOnly ways are variants measured for their start-up alone.
	startsOnly bool
}

// Summary is the median, minimum and maximum of a timing, in ms.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Result is what was measured of one way.
type Result struct {
	Name          string
	Mote          bool
	ArtifactBytes int64
	Artifact      string
	FirstOutput   Summary // ms, hello
	FirstHTTP     Summary // ms, httpd
	RSSMiB        float64 // per idle httpd instance (median), process tree
	PSSMiB        float64
	MemAvailMiB   float64 // drop in MemAvailable per instance
	IdleCPU       float64 // % of one core per idle instance
	MinRAMMiB     int     // smallest guest RAM that serves; 0: not a guest
	Notes         []string
}

func main() {
	flag.Parse()
	if *moteBin == "" || *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	// Mote's hvt rows use an image cache of the run's own, removed after.
	cache, err := os.MkdirTemp("/dev/shm", "mote-bench-cache-")
	if err == nil {
		os.Setenv("MOTE_IMAGE_CACHE", filepath.Join(cache, "cache"))
	}
	ws := ways()
	rs := startUps(ws)
	for i, w := range ws {
		fmt.Fprintf(os.Stderr, "peers: %s: memory and idle CPU\n", w.name)
		measure(w, &rs[i])
	}
	err = write(rs)
	os.RemoveAll(cache)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func g(name string) string { return filepath.Join(*dir, name) }

func size(paths ...string) int64 {
	var n int64
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

func plain(args ...string) func() (*exec.Cmd, func()) {
	return func() (*exec.Cmd, func()) { return exec.Command(args[0], args[1:]...), func() {} }
}

// withCache gives a mote command an image cache: "off", or, with "fresh",
// a new empty one in tmpfs, so that the start makes the image's copy.
func withCache(mode string, cmd *exec.Cmd, stop func()) (*exec.Cmd, func()) {
	dir := mode
	if mode == "fresh" {
		d, err := os.MkdirTemp("/dev/shm", "mote-bench-fresh-")
		if err != nil {
			d = filepath.Join(os.TempDir(), fmt.Sprintf("mote-bench-fresh-%d", time.Now().UnixNano()))
		}
		dir = filepath.Join(d, "cache")
		stop0 := stop
		stop = func() { stop0(); os.RemoveAll(d) }
	}
	cmd.Env = append(os.Environ(), "MOTE_IMAGE_CACHE="+dir)
	return cmd, stop
}

// hvtCacheVariants are hvt without the image cache, and hvt starting an
// image it has never copied (the first start of a new image).
func hvtCacheVariants() []way {
	var ws []way
	for _, v := range []struct{ name, mode string }{
		{"mote -t hvt, no image cache", "off"},
		{"mote -t hvt, first start of an image (copy made)", "fresh"},
	} {
		ws = append(ws, way{
			name: v.name, mote: true, startsOnly: true,
			hello: func() (*exec.Cmd, func()) {
				return withCache(v.mode, exec.Command(*moteBin, "run", g("hello.hvt")), func() {})
			},
			httpd: func(port int) (*exec.Cmd, func()) {
				cmd, stop := stopBySignal(exec.Command(*moteBin, "run", "--net", "user", "-p", addr(port)+":8080", g("httpd.hvt")))
				return withCache(v.mode, cmd, stop)
			},
			artifact: func() (int64, string) { return size(g("httpd.hvt")), "image" },
		})
	}
	return ws
}

func ways() []way {
	ws := []way{
		{
			name:  "native process",
			hello: plain(g("hello.plain")),
			httpd: func(port int) (*exec.Cmd, func()) {
				return stopBySignal(exec.Command(g("httpd.native"), "-addr", addr(port)))
			},
			artifact: func() (int64, string) { return size(g("httpd.native")), "static binary" },
		},
		{
			name: "mote -t unix", mote: true,
			hello: plain(*moteBin, "run", "-t", "unix", g("hello.plain")),
			httpd: func(port int) (*exec.Cmd, func()) {
				return stopBySignal(exec.Command(*moteBin, "run", "-t", "unix", g("httpd.native"), "--", "-addr", addr(port)))
			},
			artifact: func() (int64, string) { return size(g("httpd.native")), "static binary" },
		},
		{
			name: "mote -t spt", mote: true,
			hello: plain(*moteBin, "run", "-t", "spt", g("hello.hvt")),
			httpd: func(port int) (*exec.Cmd, func()) {
				return stopBySignal(exec.Command(*moteBin, "run", "-t", "spt", "--net", "user", "-p", addr(port)+":8080", g("httpd.hvt")))
			},
			artifact: func() (int64, string) { return size(g("httpd.hvt")), "image" },
		},
		{
			name: "mote -t hvt", mote: true,
			hello: plain(*moteBin, "run", g("hello.hvt")),
			httpd: func(port int) (*exec.Cmd, func()) {
				return stopBySignal(exec.Command(*moteBin, "run", "--net", "user", "-p", addr(port)+":8080", g("httpd.hvt")))
			},
			withRAM: func(port, mib int) (*exec.Cmd, func()) {
				return stopBySignal(exec.Command(*moteBin, "run", "-m", fmt.Sprint(mib), "--net", "user", "-p", addr(port)+":8080", g("httpd.hvt")))
			},
			minRAM: 16, maxRAM: 64,
			artifact: func() (int64, string) { return size(g("httpd.hvt")), "image" },
		},
	}
	ws = append(ws, hvtCacheVariants()...)
	if w, err := microVM(); err != nil {
		fmt.Fprintln(os.Stderr, "peers: no Linux microVM:", err)
	} else {
		ws = append(ws, w)
	}
	if runsc.Available() {
		ws = append(ws, way{
			name:     "gVisor runsc (ptrace)",
			hello:    inRunsc(g("hello.plain")),
			httpd:    func(port int) (*exec.Cmd, func()) { return inRunsc(g("httpd.native"), "-addr", addr(port))() },
			artifact: func() (int64, string) { return size(g("httpd.native")), "static binary in an OCI bundle" },
		})
	}
	return ws
}

// microVM is the minimal Linux VM: QEMU with Debian's kernel and an
// initramfs whose /init starts the same static binary (bench/microvm).
func microVM() (way, error) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return way{}, err
	}
	bz, _, err := microvm.DefaultKernel()
	if err != nil {
		return way{}, err
	}
	kernel, helloRD, httpdRD := g("vmlinux"), g("initrd-hello"), g("initrd-httpd")
	if err := microvm.Kernel(bz, kernel); err != nil {
		return way{}, err
	}
	if err := microvm.BuildInit(g("microinit")); err != nil {
		return way{}, err
	}
	mods := []string{"virtio_mmio", "virtio_net"}
	for rd, app := range map[string]string{helloRD: g("hello.plain"), httpdRD: g("httpd.native")} {
		if err := (microvm.InitramfsConfig{Init: g("microinit"), App: app, Modules: mods}).Write(rd); err != nil {
			return way{}, err
		}
	}
	withRAM := func(port, mib int) (*exec.Cmd, func()) {
		return stopBySignal(microvm.Command(microvm.Config{Kernel: kernel, Initrd: httpdRD, MemoryMiB: mib,
			Net: microvm.NetUser, HostPort: port, GuestPort: 8080, Args: []string{"-addr", ":8080"}}))
	}
	return way{
		name: "Linux microVM (QEMU TCG)",
		hello: func() (*exec.Cmd, func()) {
			return stopBySignal(microvm.Command(microvm.Config{Kernel: kernel, Initrd: helloRD}))
		},
		httpd:   func(port int) (*exec.Cmd, func()) { return withRAM(port, 256) },
		withRAM: withRAM, minRAM: 32, maxRAM: 256,
		artifact: func() (int64, string) {
			return size(bz, httpdRD), fmt.Sprintf("bzImage + initramfs; %.0f MB as the vmlinux QEMU boots", float64(size(kernel))/1e6)
		},
	}, nil
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// stopBySignal stops a command with SIGTERM, then SIGKILL.
func stopBySignal(cmd *exec.Cmd) (*exec.Cmd, func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, func() {
		if cmd.Process == nil {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

func inRunsc(bin string, args ...string) func() (*exec.Cmd, func()) {
	return func() (*exec.Cmd, func()) {
		c, err := runsc.New(bin, args...)
		if err != nil {
			return exec.Command("false"), func() {}
		}
		cmd := c.Command()
		return cmd, func() {
			c.Stop()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
			c.Remove()
		}
	}
}

// startUps times every way's starts in n interleaved rounds, each round
// starting every way once: the machine is shared and its speed drifts, and
// the drift then falls on every way alike rather than on whichever ran
// during a slow minute.
func startUps(ws []way) []Result {
	rs := make([]Result, len(ws))
	hello := make([][]float64, len(ws))
	httpd := make([][]float64, len(ws))
	record := func(to *[]float64, d time.Duration, err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			return
		}
		*to = append(*to, float64(d.Microseconds())/1e3)
	}
	for k := 0; k < *n; k++ {
		fmt.Fprintf(os.Stderr, "peers: start-up round %d of %d\n", k+1, *n)
		for i, w := range ws {
			d, err := firstOutput(w)
			record(&hello[i], d, err)
			d, err = firstHTTP(w.httpd, 60*time.Second)
			record(&httpd[i], d, err)
		}
	}
	for i, w := range ws {
		rs[i] = Result{Name: w.name, Mote: w.mote, FirstOutput: summary(hello[i]), FirstHTTP: summary(httpd[i])}
		rs[i].ArtifactBytes, rs[i].Artifact = w.artifact()
	}
	return rs
}

// measure adds a way's memory, idle CPU and smallest RAM to r.
func measure(w way, r *Result) {
	if w.startsOnly {
		return
	}
	idle(w, r)
	if w.withRAM != nil {
		r.MinRAMMiB = smallestRAM(w)
	}
}

func summary(ds []float64) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	sort.Float64s(ds)
	return Summary{Median: report.Median(ds), Min: ds[0], Max: ds[len(ds)-1], N: len(ds)}
}

// firstOutput times hello from the start of the command to its first line
// of output, then lets it finish.
func firstOutput(w way) (time.Duration, error) {
	cmd, cleanup := w.hello()
	defer cleanup()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	line := make(chan error, 1)
	go func() {
		// A VM's console may print lines of its own before the program's.
		sc := bufio.NewScanner(out)
		err := fmt.Errorf("%s: hello ended without its line", w.name)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "hello from mote") {
				err = nil
				break
			}
		}
		line <- err
		io.Copy(io.Discard, out)
	}()
	var d time.Duration
	select {
	case err = <-line:
		d = time.Since(start)
	case <-time.After(60 * time.Second):
		err = fmt.Errorf("%s: hello printed nothing in 60 s", w.name)
		cmd.Process.Kill()
	}
	cmd.Wait()
	return d, err
}

// firstHTTP times httpd from the start of the command to its first
// answer; a published port accepts connections before the guest serves,
// so only an HTTP answer counts.
func firstHTTP(run func(int) (*exec.Cmd, func()), limit time.Duration) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	cmd, stop := run(port)
	defer stop()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	if !answers(port, limit) {
		return 0, fmt.Errorf("%s: no HTTP answer in %v", cmd.Path, limit)
	}
	return time.Since(start), nil
}

// answers polls GET / every millisecond until it is answered with 200.
func answers(port int, limit time.Duration) bool {
	return probe.HTTP("http://"+addr(port)+"/", limit, time.Millisecond, probe.OK)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// idle starts several httpd instances, has each answer a request, lets
// them settle, and reads their memory and then their CPU over idleFor.
func idle(w way, r *Result) {
	before := procstat.MemAvailableKiB()
	type inst struct {
		cmd  *exec.Cmd
		stop func()
	}
	var is []inst
	defer func() {
		for _, i := range is {
			i.stop()
		}
	}()
	for k := 0; k < *instances; k++ {
		port, err := freePort()
		if err != nil {
			r.Notes = append(r.Notes, err.Error())
			return
		}
		cmd, stop := w.httpd(port)
		if err := cmd.Start(); err != nil {
			r.Notes = append(r.Notes, err.Error())
			return
		}
		is = append(is, inst{cmd, stop})
		if !answers(port, 2*time.Minute) {
			r.Notes = append(r.Notes, fmt.Sprintf("idle instance %d never answered", k))
			return
		}
	}
	time.Sleep(3 * time.Second)
	after := procstat.MemAvailableKiB()
	var rss, pss []float64
	var cpu0 int64
	for _, i := range is {
		a, b := procstat.Memory(i.cmd.Process.Pid)
		rss, pss = append(rss, a/1024), append(pss, b/1024)
		cpu0 += procstat.CPUNanos(i.cmd.Process.Pid)
	}
	time.Sleep(*idleFor)
	var cpu1 int64
	for _, i := range is {
		cpu1 += procstat.CPUNanos(i.cmd.Process.Pid)
	}
	r.RSSMiB, r.PSSMiB = report.Median(rss), report.Median(pss)
	r.MemAvailMiB = (before - after) / 1024 / float64(len(is))
	r.IdleCPU = 100 * float64(cpu1-cpu0) / float64(idleFor.Nanoseconds()) / float64(len(is))
}

// smallestRAM bisects the smallest guest RAM, in MiB, in which httpd
// answers a request.
func smallestRAM(w way) int {
	serves := func(mib int) bool {
		_, err := firstHTTP(func(port int) (*exec.Cmd, func()) { return w.withRAM(port, mib) }, 30*time.Second)
		return err == nil
	}
	lo, hi := w.minRAM, w.maxRAM
	if !serves(hi) {
		return 0
	}
	if serves(lo) {
		return lo
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if serves(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

func write(rs []Result) error {
	if err := os.MkdirAll(filepath.Dir(*results), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(struct {
		Date    string
		Machine string
		Results []Result
	}{time.Now().UTC().Format("2006-01-02 15:04 MST"), report.Machine(), rs}, "", "  ")
	if err := os.WriteFile(*results, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := charts(rs); err != nil {
		return err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Measured %s on %s. Start-up timings are the median of %d cold runs (a new process, VM or sandbox each time; no snapshot), with min and max, in interleaved rounds (each round starts every way once); memory and idle CPU are of %d idle httpd instances running together, each after answering one request; ratios are against the native process measured in the same run.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), report.Machine(), *n, *instances)
	w("| way | httpd artifact | hello: first output | vs native | httpd: first answer | vs native | RSS | PSS | MemAvailable drop | idle CPU (of a core) | smallest RAM |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	base := rs[0]
	for _, r := range rs {
		minRAM := "—"
		if r.MinRAMMiB > 0 {
			minRAM = fmt.Sprintf("%d MiB", r.MinRAMMiB)
		}
		idle := fmt.Sprintf("%.1f MiB | %.1f MiB | %.1f MiB | %.3f%%", r.RSSMiB, r.PSSMiB, r.MemAvailMiB, r.IdleCPU)
		if r.RSSMiB == 0 {
			idle = "— | — | — | —" // a start-up variant
		}
		w("| %s | %.1f MB (%s) | %s | %s | %s | %s | %s | %s |\n",
			r.Name, float64(r.ArtifactBytes)/1e6, r.Artifact, span(r.FirstOutput), ratio(r.FirstOutput, base.FirstOutput),
			span(r.FirstHTTP), ratio(r.FirstHTTP, base.FirstHTTP), idle, minRAM)
	}
	w("\nMote's hvt rows boot from the image's shared copy in tmpfs (docs/hvt.md), which the first start of an image makes: \"first start of an image\" is that start, every run with a new empty cache; \"no image cache\" boots from the file itself (MOTE_IMAGE_CACHE=off).\n")
	w("\n![First HTTP answer](img/peers-first-http.png)\n\n![Memory per idle instance](img/peers-memory.png)\n\n")
	for _, r := range rs {
		for _, note := range r.Notes {
			w("%s: %s\n\n", r.Name, note)
		}
	}
	return report.Splice(*doc, "peers", b.String())
}

func span(s Summary) string {
	if s.N == 0 {
		return "failed"
	}
	return fmt.Sprintf("%s (%s–%s)", ms(s.Median), ms(s.Min), ms(s.Max))
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func ratio(s, base Summary) string {
	if s.N == 0 || base.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", s.Median/base.Median)
}

func charts(rs []Result) error {
	if err := os.MkdirAll(*img, 0o755); err != nil {
		return err
	}
	var first, mem []chart.Bar
	for _, r := range rs {
		first = append(first, chart.Bar{Label: r.Name, Value: r.FirstHTTP.Median, Mote: r.Mote})
		if r.PSSMiB > 0 {
			mem = append(mem, chart.Bar{Label: r.Name, Value: r.PSSMiB, Mote: r.Mote})
		}
	}
	if err := chart.Bars(filepath.Join(*img, "peers-first-http.png"), "Start to first HTTP answer (median, this machine)", "ms, log scale", true, first); err != nil {
		return err
	}
	return chart.Bars(filepath.Join(*img, "peers-memory.png"), "Host memory per idle httpd instance (PSS)", "MiB", false, mem)
}
