package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moteos/mote/bench/report"
	"github.com/moteos/mote/internal/containerdtest"
)

// The pod benchmarks (bench/run pods) run a CRI containerd of their own
// with three runtime handlers side by side: mote (mote-oci: the httpd
// example as a unikernel), runc and runsc (the same program as an
// ordinary process in an ordinary image). With MOTE_PODS_JSON set they
// write their figures there and into docs/benchmarks.md.

// podBench is a CRI containerd with the images the benchmarks start.
type podBench struct {
	cd       *containerdtest.Containerd
	dir      string
	handlers []string
	n        int // pods started so far, for unique names
}

func newPodBench(b *testing.B) *podBench {
	h := map[string]string{"mote": filepath.Join(bin, "mote-oci")}
	handlers := []string{"mote", "runc"}
	shims := map[string]containerdtest.Shim{}
	// gVisor runs pods only through its own shim: under runc's, runsc
	// fails "cannot run with network enabled in root network namespace".
	// bench/setup builds both from the gVisor module Mote's netstack is
	// taken from; the shim is told the runsc beside it.
	if shim, err := exec.LookPath("containerd-shim-runsc-v1"); err == nil {
		real, _ := filepath.EvalSymlinks(shim)
		conf := filepath.Join(b.TempDir(), "runsc.toml")
		os.WriteFile(conf, fmt.Appendf(nil, "binary_name = %q\n", filepath.Join(filepath.Dir(real), "runsc")), 0o644)
		shims["runsc"] = containerdtest.Shim{Type: "io.containerd.runsc.v1", TypeURL: "io.containerd.runsc.v1.options", ConfigPath: conf}
		handlers = append(handlers, "runsc")
	} else {
		b.Log("SKIPPED LOUDLY: no containerd-shim-runsc-v1 (bench/setup builds it; Debian's runsc package has none): gVisor is left out of the pod figures")
	}
	cd := containerdtest.StartCRI(b, containerdtest.CRI{Handlers: h, Shims: shims, Bridge: fmt.Sprintf("motebn%d", os.Getpid()%10000), Subnet: "10.233.0.0/16"})
	cd.MustCtr("--namespace", "k8s.io", "images", "import", image(b, "httpd", "../..", "./examples/httpd"))
	plain := filepath.Join(b.TempDir(), "httpd")
	build := exec.Command(filepath.Join(bin, "mote"), "build", "-t", "unix", "-o", plain, "../../examples/httpd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the image holds nothing else
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("mote build -t unix: %v\n%s", err, out)
	}
	cd.MustCtr("--namespace", "k8s.io", "images", "import", containerdtest.Image(b, "mote-test/httpd-plain", "1", plain))
	return &podBench{cd: cd, dir: b.TempDir(), handlers: handlers}
}

// pod is a running pod: its sandbox, its address, and its shim's PID.
type pod struct {
	id, ip string
	shim   int // the pod's shim, parent of everything in it
	ctr    int // the container's process (mote, or the plain program)
}

// start starts a pod of handler with the httpd example and returns it
// once it has answered HTTP at its address, with the time that took from
// crictl runp.
func (pb *podBench) start(b *testing.B, handler string, mem int) (pod, time.Duration) {
	pb.n++
	name := fmt.Sprintf("%s-%d", handler, pb.n)
	img := "docker.io/mote-test/httpd-plain:1"
	if handler == "mote" {
		img = "docker.io/mote-test/httpd:1"
	}
	pj := filepath.Join(pb.dir, name+"-pod.json")
	os.WriteFile(pj, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"default","uid":%q},"log_directory":%q,"linux":{}}`,
		name, name, filepath.Join(pb.dir, name)), 0o644)
	cj := filepath.Join(pb.dir, name+"-ctr.json")
	os.WriteFile(cj, fmt.Appendf(nil, `{"metadata":{"name":"httpd"},"image":{"image":%q},"log_path":"httpd.log","linux":{"resources":{"memory_limit_in_bytes":%d}}}`, img, mem), 0o644)

	began := time.Now()
	var p pod
	p.id = pb.cd.MustCrictl("runp", "--runtime", handler, pj)
	b.Cleanup(func() { pb.stop(p) }) // also when the benchmark fails
	ctr := pb.cd.MustCrictl("create", p.id, cj, pj)
	pb.cd.MustCrictl("start", ctr)
	var st struct {
		Status struct{ Network struct{ IP string } }
		Info   struct{ Pid int }
	}
	json.Unmarshal([]byte(pb.cd.MustCrictl("inspectp", p.id)), &st)
	p.ip = st.Status.Network.IP
	hc := &http.Client{Timeout: time.Second}
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		resp, err := hc.Get("http://" + p.ip + ":8080/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(end) {
			b.Fatalf("%s pod %s: no HTTP answer at %s in 60 s: %v", handler, name, p.ip, err)
		}
	}
	took := time.Since(began)
	p.shim = parent(st.Info.Pid) // the pause process's parent
	var ci struct{ Info struct{ Pid int } }
	json.Unmarshal([]byte(pb.cd.MustCrictl("inspect", ctr)), &ci)
	p.ctr = ci.Info.Pid
	return p, took
}

func (pb *podBench) stop(p pod) {
	pb.cd.Crictl("stopp", p.id)
	pb.cd.Crictl("rmp", "-f", p.id)
}

// parent is a process's parent PID.
func parent(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := strings.LastIndexByte(string(b), ')'); i > 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
			p, _ := strconv.Atoi(f[1])
			return p
		}
	}
	return 0
}

// tree is pid and its descendants.
func tree(pid int) []int {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			kids[parent(p)] = append(kids[parent(p)], p)
		}
	}
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, kids[all[i]]...)
	}
	return all
}

// pss is the proportional set size of pid's tree, in MiB: what the pod
// costs the host, pages shared among pods counted once in all.
func pss(pid int) float64 {
	var kb float64
	for _, p := range tree(pid) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/smaps_rollup")
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				kb += v
			}
		}
	}
	return kb / 1024
}

// cpuTicks is the CPU time of pid's tree, in clock ticks.
func cpuTicks(pid int) float64 {
	var t float64
	for _, p := range tree(pid) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 13 {
				u, _ := strconv.ParseFloat(f[11], 64)
				s, _ := strconv.ParseFloat(f[12], 64)
				t += u + s
			}
		}
	}
	return t
}

// podResult is one handler's figures.
type podResult struct {
	Handler                 string
	Runs                    int
	FirstAnswerMs           summary // crictl runp to the first HTTP answer
	PSSMiB                  summary // the running pod's shim and everything under it
	ContainerPSSMiB         summary // the container's processes alone
	ReqPerSec               summary // BenchmarkPodHTTP
	Pods                    int     `json:",omitempty"` // BenchmarkHundredPods: pods running at once
	TotalStartS             float64 `json:",omitempty"`
	IdleCPUPercentAllPods   float64 `json:",omitempty"` // shims, pause and containers
	ContainerIdleCPUPercent float64 `json:",omitempty"` // the containers alone
	AllAnswered             bool    `json:",omitempty"`
}

type summary struct{ Median, Min, Max float64 }

func summarize(v []float64) summary {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return summary{report.Median(s), s[0], s[len(s)-1]}
}

var podResults = map[string]podResult{}

// BenchmarkPodStart: per handler, b.N pods one after another, each from
// crictl runp to its first HTTP answer, and its memory while it runs.
func BenchmarkPodStart(b *testing.B) {
	pb := newPodBench(b)
	for _, h := range pb.handlers {
		b.Run(h, func(b *testing.B) {
			var starts, mem, cmem []float64
			for i := 0; i < b.N; i++ {
				p, took := pb.start(b, h, 64<<20)
				starts = append(starts, float64(took.Microseconds())/1000)
				time.Sleep(500 * time.Millisecond) // settled, as a pod that serves
				mem = append(mem, pss(p.shim))
				cmem = append(cmem, pss(p.ctr))
				pb.stop(p)
			}
			r := podResults[h]
			r.Handler, r.Runs, r.FirstAnswerMs, r.PSSMiB, r.ContainerPSSMiB = h, b.N, summarize(starts), summarize(mem), summarize(cmem)
			podResults[h] = r
			b.ReportMetric(r.FirstAnswerMs.Median, "ms/first-answer")
			b.ReportMetric(r.PSSMiB.Median, "MiB-PSS/pod")
			b.ReportMetric(r.ContainerPSSMiB.Median, "MiB-PSS/container")
			writePodResults(b)
		})
	}
}

// BenchmarkPodHTTP: per handler, one pod under load from the host, wrk
// -t2 -c32 (keep-alive) at the pod's address, rounds interleaved across
// handlers: the cost of the pod's network path (for mote: the veth, tc's
// redirect, the TAP, the guest's netstack).
func BenchmarkPodHTTP(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("SKIPPED LOUDLY: no wrk (bench/setup installs it)")
	}
	pb := newPodBench(b)
	pods := map[string]pod{}
	for _, h := range pb.handlers {
		p, _ := pb.start(b, h, 256<<20)
		pods[h] = p
	}
	rps := map[string][]float64{}
	for i := 0; i < max(b.N, 3); i++ {
		for _, h := range pb.handlers {
			out, err := exec.Command("wrk", "-t2", "-c32", "-d5s", "http://"+pods[h].ip+":8080/").CombinedOutput()
			if err != nil {
				b.Fatalf("wrk: %v\n%s", err, out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "Requests/sec:" {
					v, _ := strconv.ParseFloat(f[1], 64)
					rps[h] = append(rps[h], v)
				}
			}
		}
	}
	for _, h := range pb.handlers {
		r := podResults[h]
		r.Handler = h
		r.ReqPerSec = summarize(rps[h])
		podResults[h] = r
		b.ReportMetric(r.ReqPerSec.Median, h+"-req/s")
	}
	writePodResults(b)
}

// BenchmarkHundredPods: 100 Mote pods started one after another and left
// running; every one answers, and their memory and idle CPU are measured
// together.
func BenchmarkHundredPods(b *testing.B) {
	const n = 100
	pb := newPodBench(b)
	for i := 0; i < b.N; i++ {
		var pods []pod
		began := time.Now()
		for len(pods) < n {
			p, _ := pb.start(b, "mote", 32<<20)
			pods = append(pods, p)
		}
		total := time.Since(began)
		time.Sleep(30 * time.Second) // start-up work (the guests' first GCs) settles
		hc := &http.Client{Timeout: 5 * time.Second}
		answered := true
		var mem []float64
		var cpu0, ctr0 float64
		for _, p := range pods {
			resp, err := hc.Get("http://" + p.ip + ":8080/")
			if err != nil {
				b.Errorf("pod %s: %v", p.ip, err)
				answered = false
			} else {
				resp.Body.Close()
			}
			mem = append(mem, pss(p.shim))
			cpu0 += cpuTicks(p.shim)
			ctr0 += cpuTicks(p.ctr)
		}
		const idle = 30 * time.Second
		time.Sleep(idle)
		var cpu1, ctr1 float64
		for _, p := range pods {
			cpu1 += cpuTicks(p.shim)
			ctr1 += cpuTicks(p.ctr)
		}
		b.Logf("idle CPU of the containers alone (mote and its guest): %.2f%% of one CPU, all %d together", (ctr1-ctr0)/idle.Seconds(), n)
		r := podResult{Handler: "mote", Runs: 1, Pods: n, TotalStartS: total.Seconds(), PSSMiB: summarize(mem), AllAnswered: answered,
			IdleCPUPercentAllPods: (cpu1 - cpu0) / idle.Seconds(), ContainerIdleCPUPercent: (ctr1 - ctr0) / idle.Seconds()} // 100 ticks a second: ticks/s is % of one CPU
		podResults["mote x100"] = r
		b.ReportMetric(r.PSSMiB.Median, "MiB-PSS/pod")
		b.ReportMetric(r.IdleCPUPercentAllPods, "%CPU-idle-all")
		for _, p := range pods {
			pb.stop(p)
		}
	}
	writePodResults(b)
}

// merge is old with what new measured: each benchmark measures some
// figures of a handler, and keeps the others' last ones.
func merge(old, new podResult) podResult {
	if new.Runs > 0 {
		old.Runs, old.FirstAnswerMs, old.PSSMiB, old.ContainerPSSMiB = new.Runs, new.FirstAnswerMs, new.PSSMiB, new.ContainerPSSMiB
	}
	if new.Pods > 0 {
		old.Pods, old.TotalStartS, old.AllAnswered, old.IdleCPUPercentAllPods, old.ContainerIdleCPUPercent = new.Pods, new.TotalStartS, new.AllAnswered, new.IdleCPUPercentAllPods, new.ContainerIdleCPUPercent
		old.PSSMiB = new.PSSMiB
	}
	if new.ReqPerSec.Median > 0 {
		old.ReqPerSec = new.ReqPerSec
	}
	old.Handler = new.Handler
	return old
}

// writePodResults writes the figures so far to $MOTE_PODS_JSON and the
// pods section of docs/benchmarks.md, when asked to.
func writePodResults(b *testing.B) {
	out := os.Getenv("MOTE_PODS_JSON")
	if out == "" {
		return
	}
	old := struct {
		Date, Machine string
		Results       map[string]podResult
	}{Results: map[string]podResult{}}
	if prev, err := os.ReadFile(out); err == nil {
		json.Unmarshal(prev, &old)
	}
	for k, v := range podResults {
		old.Results[k] = merge(old.Results[k], v)
	}
	old.Date, old.Machine = time.Now().UTC().Format("2006-01-02"), report.Machine()
	js, _ := json.MarshalIndent(old, "", "  ")
	if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	target := "spt: no usable /dev/kvm here"
	if kvmUsable() {
		target = "hvt"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "Pods under one containerd (CRI, crictl as the kubelet, CNI bridge), %s, on %s. The same HTTP server: a Mote unikernel under mote-oci (on %s); an ordinary process under runc and runsc. Start: crictl runp to the first HTTP answer at the pod's IP; memory: PSS of the pod's shim and everything under it, settled. Medians (min–max).\n\n", old.Date, old.Machine, target)
	s.WriteString("| pods | runs | start, ms | memory per pod, MiB PSS | of which the container | HTTP req/s at the pod's IP (wrk -c32, keep-alive) |\n|---|---|---|---|---|---|\n")
	for _, h := range []string{"runc", "mote", "runsc"} {
		if r, ok := old.Results[h]; ok {
			fmt.Fprintf(&s, "| %s | %d | %.0f (%.0f–%.0f) | %.1f (%.1f–%.1f) | %.1f | %.0f (%.0f–%.0f) |\n", h, r.Runs, r.FirstAnswerMs.Median, r.FirstAnswerMs.Min, r.FirstAnswerMs.Max,
				r.PSSMiB.Median, r.PSSMiB.Min, r.PSSMiB.Max, r.ContainerPSSMiB.Median, r.ReqPerSec.Median, r.ReqPerSec.Min, r.ReqPerSec.Max)
		}
	}
	if r, ok := old.Results["mote x100"]; ok {
		fmt.Fprintf(&s, "\n%d Mote pods (32 MiB each) started one after another in %.0f s, every one answering: %v; %.1f MiB PSS per pod (median; %.1f–%.1f), idle CPU of all of them together (shims, pause processes and unikernels, over 30 s after 30 s settling) %.1f%% of one CPU, of which the unikernels %.1f%%.\n",
			r.Pods, r.TotalStartS, r.AllAnswered, r.PSSMiB.Median, r.PSSMiB.Min, r.PSSMiB.Max, r.IdleCPUPercentAllPods, r.ContainerIdleCPUPercent)
	}
	if err := report.Splice("../../docs/benchmarks.md", "pods", s.String()); err != nil {
		b.Fatal(err)
	}
}
