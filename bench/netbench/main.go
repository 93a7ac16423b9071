// Command netbench measures examples/httpd under load with wrk — as a
// native process, under mote's unix target, and as an hvt unikernel with
// user and TAP networking — in one run, and writes the results into
// docs/benchmarks.md between the net markers.
//
//	netbench -mote PATH -httpd NATIVE_BINARY -image HVT_IMAGE -doc docs/benchmarks.md
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/moteos/mote/bench/chart"
	"github.com/moteos/mote/bench/microvm"
	"github.com/moteos/mote/bench/netns"
	"github.com/moteos/mote/bench/probe"
	"github.com/moteos/mote/bench/procstat"
	"github.com/moteos/mote/bench/report"
	"github.com/moteos/mote/bench/runsc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	moteBin  = flag.String("mote", "", "the mote binary")
	native   = flag.String("httpd", "", "examples/httpd built for the host")
	image    = flag.String("image", "", "examples/httpd built for hvt")
	doc      = flag.String("doc", "docs/benchmarks.md", "the page to update")
	duration = flag.Duration("d", 10*time.Second, "wrk duration per run")
	results  = flag.String("results", "docs/results/net.json", "where to write the results as JSON")
	img      = flag.String("img", "docs/img", "where to write the chart")
	nRounds  = flag.Int("rounds", 3, "rounds of every server, interleaved")
)

// Row is one server's figures, as bench/summary reads them.
type Row struct {
	Name        string
	Mote        bool
	RPS         float64 // keep-alive
	P99         string
	CPUMicros   float64 // host CPU per request
	ExitsPerReq float64 // hvt only
	CloseRPS    float64 // a new connection per request
	// Medians of the ratios measured within each round (0: not measured).
	VsNative, VsGVisor, VsGVisorMin, VsGVisorMax float64
}

const path = "/style.css" // a small fixed page (101 bytes)

type result struct {
	name          string
	rps           float64
	p50, p99      string
	requests      float64
	cpuUS         float64 // host CPU per request
	exitsPerReq   float64 // hvt only: every exit, the doorbell's included
	bellPerReq    float64 // exits KVM answered itself (the NIC doorbell)
	framesPerExit float64
	closeRPS      float64 // new connection per request
	note          string

	vsNative                           float64 // median of the rounds' ratios
	vsGVisor, vsGVisorMin, vsGVisorMax float64
}

var vsGVisor []string

func main() {
	flag.Parse()
	// Every server in each round, the rounds one after another: the
	// machine's slow spells then fall on all of them, and each figure is
	// the median over the rounds, each ratio the median of the ratios
	// measured within a round.
	var rounds [][]result
	for i := 0; i < *nRounds; i++ {
		rounds = append(rounds, runAll())
	}
	rs := medians(rounds)
	for j := range rs {
		rs[j].vsNative = medianRatio(rounds, j, 0)
	}
	for i, r := range rs {
		if !strings.HasPrefix(r.name, "gVisor") || r.rps == 0 {
			continue
		}
		for j := range rs {
			o := &rs[j]
			if !strings.HasPrefix(o.name, "mote -t hvt") && !strings.HasPrefix(o.name, "mote -t spt") {
				continue
			}
			v := ratios(rounds, j, i)
			if len(v) == 0 {
				continue
			}
			o.vsGVisor, o.vsGVisorMin, o.vsGVisorMax = report.Median(v), slices.Min(v), slices.Max(v)
			o.note = fmt.Sprintf("%.2f× gVisor's req/s (rounds: %.2f–%.2f)", o.vsGVisor, o.vsGVisorMin, o.vsGVisorMax)
			vsGVisor = append(vsGVisor, o.name+": "+o.note)
		}
	}
	if err := record(rs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rss, pss, rssErr := idleRSS()
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s. `wrk -t2 -c32 -d%v --latency` on `%s` of examples/httpd (keep-alive), then the same with `Connection: close` (a new connection per request); wrk runs on the same 2 cores as the server. CPU is the server's host CPU (mote, the tender's threads and the guest's vCPUs) divided by the requests served. Every figure is the median of %d rounds, each round measuring every server in turn; p50 and p99 are those of the round with the median req/s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), *duration, path, *nRounds)
	fmt.Fprintf(&b, "| server | req/s | vs native | p50 | p99 | CPU µs/req | new-connection req/s | exits/req | frames/exit |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		exits, frames := "—", "—"
		if r.exitsPerReq > 0 {
			exits, frames = fmt.Sprintf("%.3f (%.3f doorbell)", r.exitsPerReq, r.bellPerReq), fmt.Sprintf("%.1f", r.framesPerExit)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.3f× | %s | %s | %.0f | %.0f | %s | %s |\n", r.name, r.rps, r.vsNative, r.p50, r.p99, r.cpuUS, r.closeRPS, exits, frames)
	}
	fmt.Fprintf(&b, "\n![HTTP requests per second](img/net-rps.png)\n")
	if rssErr != nil {
		fmt.Fprintf(&b, "\nIdle httpd unikernel: not measured (%v).\n", rssErr)
	} else {
		fmt.Fprintf(&b, "\nIdle httpd unikernel (64 MiB guest, user networking), 1 s after serving one request: host RSS %.1f MiB, PSS %.1f MiB (the image's pages are shared between instances: the host's page cache, or the image's copy in tmpfs).\n", rss, pss)
	}
	if len(vsGVisor) > 0 {
		fmt.Fprintf(&b, "\nAgainst gVisor measured in the same run: %s.\n", strings.Join(vsGVisor, "; "))
	}
	for _, r := range rs {
		if r.note != "" && !strings.Contains(r.note, "gVisor's") {
			fmt.Fprintf(&b, "\n%s: %s\n", r.name, r.note)
		}
	}
	b.WriteString("\n")
	if err := report.Splice(*doc, "net", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

// runAll measures every server once, in a fixed order.
func runAll() []result {
	var rs []result
	rs = append(rs, run("native process", "127.0.0.1:18090", nil, exec.Command(*native, "-addr", "127.0.0.1:18090")))
	rs = append(rs, run("mote -t unix", "127.0.0.1:18091", nil, exec.Command(*moteBin, "run", "-t", "unix", *native, "--", "-addr", "127.0.0.1:18091")))
	rs = append(rs, run("mote -t hvt, --net user", "127.0.0.1:18092", nil,
		exec.Command(*moteBin, "run", "--stats", "--net", "user", "-p", "127.0.0.1:18092:8080", *image)))
	rs = append(rs, run("mote -t spt, --net user", "127.0.0.1:18094", nil,
		exec.Command(*moteBin, "run", "-t", "spt", "--net", "user", "-p", "127.0.0.1:18094:8080", *image)))
	if os.Geteuid() == 0 {
		rs = append(rs, runTap("hvt"), runTap("spt"))
		if runsc.Available() {
			rs = append(rs, runRunsc("127.0.0.1:18095"))
		}
	}
	if r, ok := runMicroVM(18096); ok {
		rs = append(rs, r)
	}
	return rs
}

// medians folds rounds of the same servers into one row per server: the
// median of each figure, and the latencies and note of the round whose
// req/s is the median.
func medians(rounds [][]result) []result {
	out := make([]result, len(rounds[0]))
	for i := range out {
		var rows []result
		for _, round := range rounds {
			rows = append(rows, round[i])
		}
		med := func(f func(result) float64) float64 {
			var v []float64
			for _, r := range rows {
				v = append(v, f(r))
			}
			return report.Median(v)
		}
		slices.SortFunc(rows, func(a, b result) int { return cmp.Compare(a.rps, b.rps) })
		r := rows[len(rows)/2]
		r.rps = med(func(r result) float64 { return r.rps })
		r.requests = med(func(r result) float64 { return r.requests })
		r.cpuUS = med(func(r result) float64 { return r.cpuUS })
		r.exitsPerReq = med(func(r result) float64 { return r.exitsPerReq })
		r.bellPerReq = med(func(r result) float64 { return r.bellPerReq })
		r.framesPerExit = med(func(r result) float64 { return r.framesPerExit })
		r.closeRPS = med(func(r result) float64 { return r.closeRPS })
		out[i] = r
	}
	return out
}

// ratios lists server j's req/s over server i's, measured in the same
// round, for every round where i served.
func ratios(rounds [][]result, j, i int) []float64 {
	var v []float64
	for _, round := range rounds {
		if round[i].rps > 0 {
			v = append(v, round[j].rps/round[i].rps)
		}
	}
	return v
}

// medianRatio is the median of ratios, 0 if there is none.
func medianRatio(rounds [][]result, j, i int) float64 {
	v := ratios(rounds, j, i)
	if len(v) == 0 {
		return 0
	}
	return report.Median(v)
}

// record writes the rows as JSON and draws the req/s chart.
func record(rs []result) error {
	var rows []Row
	var bars []chart.Bar
	for _, r := range rs {
		mote := strings.HasPrefix(r.name, "mote")
		rows = append(rows, Row{r.name, mote, r.rps, r.p99, r.cpuUS, r.exitsPerReq, r.closeRPS,
			r.vsNative, r.vsGVisor, r.vsGVisorMin, r.vsGVisorMax})
		bars = append(bars, chart.Bar{Label: r.name, Value: r.rps, Mote: mote})
	}
	raw, _ := json.MarshalIndent(struct {
		Date string
		Rows []Row
	}{time.Now().UTC().Format("2006-01-02 15:04 MST"), rows}, "", "  ")
	os.MkdirAll(filepath.Dir(*results), 0o755)
	if err := os.WriteFile(*results, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	os.MkdirAll(*img, 0o755)
	return chart.Bars(filepath.Join(*img, "net-rps.png"), "HTTP requests per second (wrk -c32, keep-alive; this machine)", "req/s", false, bars)
}

func run(name, addr string, wrkPrefix []string, cmd *exec.Cmd) result {
	return runWith(name, addr, wrkPrefix, cmd, nil)
}

// runStop is run for a server stopped by a command of its own.
func runStop(name, addr string, cmd *exec.Cmd, stop func()) result {
	return runWith(name, addr, nil, cmd, stop)
}

func runWith(name, addr string, wrkPrefix []string, cmd *exec.Cmd, stop func()) result {
	r := result{name: name}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.note = err.Error()
		return r
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if !waitHTTP(addr, wrkPrefix) {
		r.note = "server did not come up: " + tail(out.String())
		return r
	}
	wrk(addr, wrkPrefix, "2s", nil) // warm up
	ka := wrk(addr, wrkPrefix, duration.String(), nil)
	cl := wrk(addr, wrkPrefix, "5s", []string{"-H", "Connection: close"})
	r.rps, r.p50, r.p99, r.requests = ka.rps, ka.p50, ka.p99, ka.requests+cl.requests
	r.closeRPS = cl.rps
	if stop != nil {
		stop()
	} else {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if cmd.ProcessState != nil {
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		// The warm-up's requests are not counted; its CPU is (an overcount of
		// at most 2 s of 12+5).
		r.cpuUS = float64(cpu.Microseconds()) / r.requests
	}
	if m := regexp.MustCompile(`exits: (\d+) system calls, (\d+) exceptions`).FindStringSubmatch(out.String()); m != nil {
		sc, _ := strconv.Atoi(m[1])
		ex, _ := strconv.Atoi(m[2])
		frames, bell := 0, 0
		for _, m := range regexp.MustCompile(`nic \S+: (\d+) frames to the guest, (\d+) from it, \d+ dropped, (\d+) doorbell exits`).FindAllStringSubmatch(out.String(), -1) {
			rx, _ := strconv.Atoi(m[1])
			tx, _ := strconv.Atoi(m[2])
			b, _ := strconv.Atoi(m[3])
			frames += rx + tx
			bell += b
		}
		exits := sc + ex + bell
		r.exitsPerReq = float64(exits) / r.requests
		r.bellPerReq = float64(bell) / r.requests
		if exits > 0 {
			r.framesPerExit = float64(frames) / float64(exits)
		}
	}
	return r
}

// runTap runs the unikernel behind a TAP device in a network namespace,
// with wrk inside the namespace.
func runTap(target string) result {
	name := "mote -t " + target + ", --net tap"
	ns, err := netns.New(fmt.Sprintf("mote-bench-%d", os.Getpid()))
	if err != nil {
		return result{name: name, note: "cannot create a network namespace: " + err.Error()}
	}
	defer ns.Remove()
	args := []string{*moteBin, "run", "-t", target, "--net", ns.TapArg(), *image}
	if target == "hvt" {
		args = []string{*moteBin, "run", "-t", target, "--stats", "--net", ns.TapArg(), *image}
	}
	return run(name, netns.Guest+":8080", ns.Prefix(), ns.Command(args[0], args[1:]...))
}

// waitHTTP waits until the server at addr answers, asked from inside the
// namespace that prefix enters when it is set.
func waitHTTP(addr string, prefix []string) bool {
	if prefix == nil {
		return probe.HTTP("http://"+addr+path, 2*time.Minute, 200*time.Millisecond, probe.OK)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if exec.Command(prefix[0], append(prefix[1:], "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+addr+path)...).Run() == nil {
			return true
		}
	}
	return false
}

type wrkOut struct {
	rps, requests float64
	p50, p99      string
}

func wrk(addr string, prefix []string, d string, extra []string) wrkOut {
	args := append([]string{"-t2", "-c32", "-d" + d, "--latency"}, extra...)
	args = append(args, "http://"+addr+path)
	var cmd *exec.Cmd
	if prefix == nil {
		cmd = exec.Command("wrk", args...)
	} else {
		cmd = exec.Command(prefix[0], append(append(prefix[1:], "wrk"), args...)...)
	}
	out, _ := cmd.CombinedOutput()
	s := string(out)
	var w wrkOut
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(s); m != nil {
		w.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(s); m != nil {
		w.requests, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := regexp.MustCompile(`(?m)^\s+50%\s+(\S+)`).FindStringSubmatch(s); m != nil {
		w.p50 = m[1]
	}
	if m := regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`).FindStringSubmatch(s); m != nil {
		w.p99 = m[1]
	}
	return w
}

func tail(s string) string {
	if len(s) > 400 {
		return s[len(s)-400:]
	}
	return s
}

// idleRSS starts the unikernel, serves one request, waits a second and
// reads the tender's RSS and PSS in MiB.
func idleRSS() (float64, float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(*moteBin, "run", "--net", "user", "-p", addr+":8080", *image)
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if !waitHTTP(addr, nil) {
		return 0, 0, fmt.Errorf("the unikernel published on %s never answered", addr)
	}
	exec.Command("curl", "-s", "-o", "/dev/null", "http://"+addr+"/").Run()
	time.Sleep(time.Second)
	rss, pss := procstat.Memory(cmd.Process.Pid)
	return rss / 1024, pss / 1024, nil
}

// runMicroVM serves the same static binary from a minimal Linux VM
// (bench/microvm: QEMU under TCG, user networking with a forwarded port).
func runMicroVM(port int) (result, bool) {
	name := "Linux microVM (QEMU TCG, user net)"
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return result{}, false
	}
	bz, _, err := microvm.DefaultKernel()
	if err != nil {
		return result{}, false
	}
	dir := filepath.Dir(*native)
	kernel, initrd := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd-httpd")
	if err := microvm.Kernel(bz, kernel); err == nil {
		err = microvm.Initramfs(initrd, *native, []string{"virtio_mmio", "virtio_net"})
	}
	if err != nil {
		return result{name: name, note: err.Error()}, true
	}
	cmd := microvm.Command(microvm.Config{Kernel: kernel, Initrd: initrd, Net: microvm.NetUser, HostPort: port, GuestPort: 8080, Args: []string{"-addr", ":8080"}})
	return run(name, fmt.Sprintf("127.0.0.1:%d", port), nil, cmd), true
}

// runRunsc serves the same static binary under gVisor's runsc.
func runRunsc(addr string) result {
	name := "gVisor runsc (ptrace, --network=host)"
	c, err := runsc.New(*image, "-addr", addr)
	if err != nil {
		return result{name: name, note: err.Error()}
	}
	defer c.Remove()
	return runStop(name, addr, c.Command(), c.Stop)
}
