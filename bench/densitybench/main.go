// Command densitybench starts many idle httpd unikernels at once, checks
// that every one answers a request, and measures what they cost the
// machine: MemAvailable per instance (which, unlike RSS, includes KVM's
// kernel memory), the CPU they use while idle, and how fast they start. It
// writes the results into docs/benchmarks.md between the density markers.
//
//	densitybench -mote PATH -image HTTPD_HVT [-n 500]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moteos/mote/bench/report"
)

var (
	moteBin = flag.String("mote", "", "the mote binary")
	image   = flag.String("image", "", "examples/httpd built for hvt")
	n       = flag.Int("n", 500, "instances")
	doc     = flag.String("doc", "docs/benchmarks.md", "the page to update")
	idleFor = flag.Duration("idle", 60*time.Second, "how long to measure idle CPU")
)

const basePort = 21000

func main() {
	flag.Parse()
	before := memAvailable()
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
	time.Sleep(5 * time.Second) // let start-up work settle
	after := memAvailable()
	busy := cpuBusy(*idleFor)

	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s: %d httpd unikernels (hvt, 32 MiB guest each, user networking with a published port each), started at once.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), len(cmds))
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| instances answering a request | %d of %d |\n", answered.Load(), len(cmds))
	fmt.Fprintf(&b, "| all started and answering after | %.1f s (%.1f instances/s, on 2 cores) |\n", ready.Seconds(), float64(answered.Load())/ready.Seconds())
	fmt.Fprintf(&b, "| MemAvailable drop per instance | %.1f MiB |\n", float64(before-after)/1024/float64(len(cmds)))
	fmt.Fprintf(&b, "| CPU of all of them while idle, over %v | %.1f%% of the machine's 2 cores |\n\n", *idleFor, busy)
	if err := report.Splice(*doc, "density", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemAvailable:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
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
