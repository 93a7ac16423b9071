// Command densitybench starts many idle httpd unikernels at once, checks
// that every one answers a request, and measures what they cost the
// machine: MemAvailable per instance (which, unlike RSS, includes KVM's
// kernel memory), the CPU they use while idle, and how fast they start. It
// writes the results into docs/benchmarks.md between the density markers.
//
//	densitybench -mote PATH -image HTTPD_HVT [-n 500]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moteos/mote/bench/procstat"
	"github.com/moteos/mote/bench/report"
)

var (
	moteBin = flag.String("mote", "", "the mote binary")
	image   = flag.String("image", "", "examples/httpd built for hvt")
	n       = flag.Int("n", 500, "instances")
	doc     = flag.String("doc", "docs/benchmarks.md", "the page to update")
	idleFor = flag.Duration("idle", 60*time.Second, "how long to measure idle CPU")
	settle  = flag.Duration("settle", 30*time.Second, "how long to wait after the last start before measuring")
	results = flag.String("results", "docs/results/density.json", "where to write the results as JSON")
)

// Result is what bench/summary reads.
type Result struct {
	Date           string
	Instances      int
	Answering      int64
	StartSeconds   float64 // all started and answering after
	StartsPerSec   float64
	MemAvailMiB    float64 // MemAvailable drop per instance
	PSSMiB         float64 // per instance (median)
	IdleCPU        float64 // % of one core, all instances together (their own threads)
	MachineIdleCPU float64 // % of the machine's cores busy over the same period (everything)
}

const basePort = 21000

func main() {
	flag.Parse()
	before := procstat.MemAvailableKiB()
	start := time.Now()
	cmds := make([]*exec.Cmd, *n)
	for i := range cmds {
		cmds[i] = exec.Command(*moteBin, "run", "-m", "32M", "--net", "user", "-p", fmt.Sprintf("127.0.0.1:%d:8080", basePort+i), *image)
		cmds[i].SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmds[i].Start(); err != nil {
			fmt.Fprintln(os.Stderr, "start:", err)
			cmds = cmds[:i]
			break
		}
	}
	defer func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	}()
	// Started = answering its first request.
	var answered atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := range cmds {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", basePort+i))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						answered.Add(1)
						return
					}
				}
			}
		}(i)
	}
	wg.Wait()
	ready := time.Since(start)
	time.Sleep(*settle) // let start-up work and the first collections pass
	after := procstat.MemAvailableKiB()
	var pss []float64
	var cpu0 int64
	for _, c := range cmds {
		_, p := procstat.Memory(c.Process.Pid)
		pss = append(pss, p/1024)
		cpu0 += procstat.CPUNanos(c.Process.Pid)
	}
	busy := cpuBusy(*idleFor)
	var cpu1 int64
	for _, c := range cmds {
		cpu1 += procstat.CPUNanos(c.Process.Pid)
	}
	sort.Float64s(pss)
	r := Result{
		Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Instances: len(cmds), Answering: answered.Load(),
		StartSeconds: ready.Seconds(), StartsPerSec: float64(answered.Load()) / ready.Seconds(),
		MemAvailMiB: (before - after) / 1024 / float64(len(cmds)), PSSMiB: pss[len(pss)/2],
		IdleCPU: 100 * float64(cpu1-cpu0) / float64(idleFor.Nanoseconds()), MachineIdleCPU: busy,
	}
	raw, _ := json.MarshalIndent(r, "", "  ")
	os.MkdirAll(filepath.Dir(*results), 0o755)
	if err := os.WriteFile(*results, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s: %d httpd unikernels (hvt, 32 MiB guest each, user networking with a published port each), started at once; measured %v after the last answered.\n\n", r.Date, len(cmds), *settle)
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| instances answering a request | %d of %d |\n", r.Answering, r.Instances)
	fmt.Fprintf(&b, "| all started and answering after | %.1f s (%.1f instances/s, on 2 cores) |\n", r.StartSeconds, r.StartsPerSec)
	fmt.Fprintf(&b, "| MemAvailable drop per instance | %.1f MiB |\n", r.MemAvailMiB)
	fmt.Fprintf(&b, "| PSS per instance (median) | %.1f MiB |\n", r.PSSMiB)
	fmt.Fprintf(&b, "| CPU of all of them while idle, over %v (their threads, schedstat) | %.2f%% of one core (%.4f%% each) |\n", *idleFor, r.IdleCPU, r.IdleCPU/float64(r.Instances))
	fmt.Fprintf(&b, "| the machine's busy share over the same period (everything running) | %.1f%% of 2 cores |\n\n", r.MachineIdleCPU)
	if err := report.Splice(*doc, "density", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

// cpuBusy is the machine's busy share over d, in percent.
func cpuBusy(d time.Duration) float64 {
	read := func() (total, idle int64) {
		b, _ := os.ReadFile("/proc/stat")
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
		for i, s := range f {
			v, _ := strconv.ParseInt(s, 10, 64)
			total += v
			if i == 3 || i == 4 {
				idle += v
			}
		}
		return
	}
	t0, i0 := read()
	time.Sleep(d)
	t1, i1 := read()
	return 100 * float64((t1-t0)-(i1-i0)) / float64(t1-t0)
}
