// Command hvtbench measures the hvt tender against the same programs run
// natively, on this machine, in one run, and writes the results into
// docs/benchmarks.md between the hvt markers. bench/run builds what it
// needs and calls it.
//
//	hvtbench -mote PATH -dir BUILD_DIR -doc docs/benchmarks.md [-n 15]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"github.com/moteos/mote/bench/procstat"
	"github.com/moteos/mote/bench/report"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	moteBin = flag.String("mote", "", "the mote binary")
	dir     = flag.String("dir", "", "directory with the built guests (hello, exitcost, idle, busy) and hello.plain")
	doc     = flag.String("doc", "docs/benchmarks.md", "the page to update")
	n       = flag.Int("n", 15, "runs per timing")
)

func main() {
	flag.Parse()
	if *moteBin == "" || *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	g := func(name string) string { return filepath.Join(*dir, name) }

	w("Measured %s on %s. Every timing is the median of %d runs, with min and max; ratios are against the native process measured in the same run.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), report.Machine(), *n)

	// Start to exit.
	w("### Start to exit\n\n")
	w("Each program prints one line and exits; timed from process start to exit, the tender's own start included. `plainhello` is one fmt.Println (%.1f MB); `hello` is examples/hello, which imports the mote API and with it gVisor's netstack (%.1f MB).\n\n",
		float64(size(g("plainhello")))/1e6, float64(size(g("hello")))/1e6)
	w("| program | run | median | min | max | vs native |\n|---|---|---|---|---|---|\n")
	for _, prog := range []string{"plainhello", "hello"} {
		native := timeRuns(*n, func() error { return exec.Command(g(prog)).Run() })
		hvt := timeRuns(*n, func() error { return exec.Command(*moteBin, "run", g(prog)).Run() })
		spt := timeRuns(*n, func() error { return exec.Command(*moteBin, "run", "-t", "spt", g(prog)).Run() })
		w("| %s | native process | %s | %s | %s | 1.0× |\n", prog, ms(native.med), ms(native.min), ms(native.max))
		w("| %s | `mote run` (hvt) | %s | %s | %s | %.1f× |\n", prog, ms(hvt.med), ms(hvt.min), ms(hvt.max), hvt.med.Seconds()/native.med.Seconds())
		w("| %s | `mote run -t spt` | %s | %s | %s | %.1f× |\n", prog, ms(spt.med), ms(spt.min), ms(spt.max), spt.med.Seconds()/native.med.Seconds())
	}
	w("\n")

	// Boot to main: the first write of the program, seen by --trace.
	var setups, firsts []time.Duration
	for i := 0; i < *n; i++ {
		out, _ := exec.Command(*moteBin, "run", "--trace", "--stats", g("plainhello")).CombinedOutput()
		if d, ok := traceTime(out, " write("); ok {
			firsts = append(firsts, d)
		}
		if m := regexp.MustCompile(`tender setup ([0-9.]+)(µs|ms)`).FindSubmatch(out); m != nil {
			setups = append(setups, parseDur(string(m[1]), string(m[2])))
		}
	}
	s, f := stats(setups), stats(firsts)
	w("### Boot to main (plainhello)\n\n")
	w("| phase | median | min | max |\n|---|---|---|---|\n")
	w("| tender setup (KVM VM, memory, image loaded, first vCPU) | %s | %s | %s |\n", ms(s.med), ms(s.min), ms(s.max))
	w("| tender start → the program's first output (main running) | %s | %s | %s |\n\n", ms(f.med), ms(f.min), ms(f.max))

	// Exit costs.
	w("### What a system call costs\n\n")
	w("µs per call, median of 5 runs of `bench/guests/exitcost` (each a loop of thousands of calls). Under hvt every call but the vDSO clock and the shim's calls is a VM exit.\n\n")
	nat, hv := exitCosts(g("exitcost"), nil), exitCosts(*moteBin, []string{"run", g("exitcost")})
	w("| call | native µs | hvt µs |\n|---|---|---|\n")
	for _, name := range order(nat) {
		w("| %s | %.3f | %.3f |\n", name, nat[name], hv[name])
	}
	w("\n")

	// Exits per second.
	idle := exitRate(g("idle"), nil, 10*time.Second)
	busy := exitRate(g("busy"), []string{"--", "5"}, 0)
	w("### Exits per second\n\n")
	w("| guest | exits/s | host CPU |\n|---|---|---|\n")
	w("| idle (waits for a signal), 10 s | %.1f | %s |\n", idle.rate, idle.cpu)
	w("| busy (hashing and allocating), 5 s | %.1f | %s |\n\n", busy.rate, busy.cpu)

	// Image size.
	img, plain := size(g("hello")), size(g("hello.plain"))
	w("### Image size\n\n")
	w("| artifact | bytes | vs plain |\n|---|---|---|\n")
	w("| `go build` of examples/hello (CGO_ENABLED=0) | %d | 1.00× |\n", plain)
	w("| `mote build -t hvt` of examples/hello (the image) | %d | %.2f× |\n\n", img, float64(img)/float64(plain))

	// Memory of an idle guest.
	rss, pss := idleMemory(g("idle"))
	w("### Host memory of an idle guest\n\n")
	w("`mote run` of `idle` (64 MiB guest), 1 s after it is ready; median of 5. RSS does not include KVM's own kernel memory (shadow page tables).\n\n")
	w("| RSS | PSS |\n|---|---|\n| %.1f MiB | %.1f MiB |\n\n", rss, pss)

	if err := report.Splice(*doc, "hvt", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

type summary struct{ med, min, max time.Duration }

func stats(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return summary{ds[len(ds)/2], ds[0], ds[len(ds)-1]}
}

func timeRuns(n int, f func() error) summary {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, "run failed:", err)
		}
		ds = append(ds, time.Since(start))
	}
	return stats(ds)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1e3) }

func parseDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	if unit == "ms" {
		return time.Duration(f * float64(time.Millisecond))
	}
	return time.Duration(f * float64(time.Microsecond))
}

// traceTime finds the first trace line containing what and returns its time.
func traceTime(out []byte, what string) (time.Duration, bool) {
	re := regexp.MustCompile(`mote: trace: +([0-9.]+)ms`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, what) {
			if m := re.FindStringSubmatch(line); m != nil {
				return parseDur(m[1], "ms"), true
			}
		}
	}
	return 0, false
}

func exitCosts(bin string, args []string) map[string]float64 {
	runs := map[string][]float64{}
	for i := 0; i < 5; i++ {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "exitcost:", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				runs[f[0]] = append(runs[f[0]], v)
			}
		}
	}
	med := map[string]float64{}
	for k, v := range runs {
		sort.Float64s(v)
		med[k] = v[len(v)/2]
	}
	return med
}

func order(m map[string]float64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

type rate struct {
	rate float64
	cpu  string
}

// exitRate runs a guest with --stats for d (or until it exits) and divides
// its exits by the time.
func exitRate(image string, args []string, d time.Duration) rate {
	cmd := exec.Command(*moteBin, append([]string{"run", "--stats", image}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return rate{}
	}
	if d > 0 {
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.Wait()
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	m := regexp.MustCompile(`exits: (\d+) system calls, (\d+) exceptions \((\d+) page faults bound memory\), (\d+) kicks`).FindStringSubmatch(out.String())
	if m == nil {
		return rate{cpu: "?"}
	}
	total := 0
	for _, s := range m[1:] {
		if s == m[3] {
			continue // page faults are counted among the exceptions
		}
		v, _ := strconv.Atoi(s)
		total += v
	}
	return rate{float64(total) / wall.Seconds(), fmt.Sprintf("%.1f%% of one core", 100*cpu.Seconds()/wall.Seconds())}
}

func size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// idleMemory starts the idle guest five times and reads the tender's RSS
// and PSS once it is ready.
func idleMemory(image string) (rssMiB, pssMiB float64) {
	var rs, ps []float64
	for i := 0; i < 5; i++ {
		cmd := exec.Command(*moteBin, "run", image)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			continue
		}
		bufio.NewReader(stdout).ReadString('\n')
		time.Sleep(time.Second)
		rss, pss := procstat.Memory(cmd.Process.Pid)
		rs, ps = append(rs, rss/1024), append(ps, pss/1024)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	sort.Float64s(rs)
	sort.Float64s(ps)
	if len(rs) == 0 {
		return 0, 0
	}
	return rs[len(rs)/2], ps[len(ps)/2]
}
