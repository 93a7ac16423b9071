package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	benchreport "github.com/moteos/mote/bench/report"
)

// mote serve, end to end on spt (hvt where KVM is): the first connection
// starts the unikernel and is served, as are connections that come while
// it boots; it stops after its idle time and the next connection starts
// it again; a service that cannot start has its clients reset and is
// retried later; SIGHUP adds a service; SIGTERM stops everything.
func TestServeOnDemand(t *testing.T) {
	target := "spt"
	if kvmOK() {
		target = "hvt"
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "httpd."+target)
	if o := mote(t, "build", "-t", target, "-o", image, "./examples/httpd"); o.status != 0 {
		t.Fatalf("mote build: %s", o.stderr)
	}
	os.WriteFile(filepath.Join(dir, "not-an-image"), []byte("text"), 0o644)
	web, bad, web2 := freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "tcp")
	config := filepath.Join(dir, "serve.json")
	write := func(services ...string) {
		os.WriteFile(config, []byte(`{"services": [`+strings.Join(services, ",")+`]}`), 0o644)
	}
	svc := func(name, img string, port int) string {
		return fmt.Sprintf(`{"name": %q, "image": %q, "target": %q, "memory": "32M", "ports": ["127.0.0.1:%d:8080"], "idle": "1s"}`, name, img, target, port)
	}
	write(svc("web", filepath.Base(image), web), svc("bad", "not-an-image", bad))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := start(t, "serve", "--metrics", metricsAddr, config)

	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	// metric is a sample's value in mote serve's metrics, or -1.
	metric := func(sample string) float64 {
		resp, err := hc.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, sample+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	get := func(port int) (string, error) {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// mote serve listens before it returns to nothing: wait for the socket.
	waitFor(t, "mote serve's socket", func() bool {
		return strings.Contains(readNetTCP(), fmt.Sprintf(":%04X", web))
	})

	// Cold: eight clients at once, the first of which starts it.
	cold := func(round string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if body, err := get(web); err != nil || !strings.Contains(body, `"service":"httpd"`) {
					errs <- fmt.Errorf("%s: %q %v", round, body, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("a connection that started the service was not served: %v\nmote serve:\n%s", err, s.stderr)
		}
	}
	cold("first start")
	if v := metric(`mote_serve_starts_total{service="web"}`); v != 1 {
		t.Errorf("starts_total %v, want 1", v)
	}
	if v := metric(`mote_serve_resident_bytes{service="web"}`); v < 1<<20 {
		t.Errorf("resident_bytes of the running unikernel: %v", v)
	}
	// Idle for 1 s: it stops; the next clients start it again.
	waitFor(t, "the idle stop", func() bool { return strings.Count(s.stderr.String(), "web: stopped after") == 1 })
	if v := metric(`mote_serve_exits_total{reason="exit",service="web"}`); v != 1 {
		t.Errorf("exits_total{reason=exit} %v, want 1", v)
	}
	if v := metric(`mote_serve_cpu_seconds_total{service="web"}`); v <= 0 {
		t.Errorf("cpu_seconds_total after a run: %v", v)
	}
	if v := metric(`mote_serve_run_seconds_count{service="web"}`); v != 1 {
		t.Errorf("run_seconds_count %v, want 1", v)
	}
	cold("second start")
	if n := strings.Count(s.stderr.String(), "web: started"); n != 2 {
		t.Errorf("web started %d times, want 2:\n%s", n, s.stderr)
	}

	// A service that cannot start: its client is reset, and it waits.
	if _, err := get(bad); err == nil {
		t.Error("a client of a service that cannot start was answered")
	}
	waitFor(t, "the failure's log", func() bool { return strings.Contains(s.stderr.String(), "bad: next start in 1s") })
	if v := metric(`mote_serve_failures_total{service="bad"}`); v != 1 {
		t.Errorf("failures_total of the bad service: %v, want 1", v)
	}
	if _, err := get(bad); err == nil {
		t.Error("a client during the retry wait was answered")
	}

	// SIGHUP: a service added.
	write(svc("web", filepath.Base(image), web), svc("bad", "not-an-image", bad), svc("web2", filepath.Base(image), web2))
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(s.stderr.String(), "reloaded") })
	if body, err := get(web2); err != nil || !strings.Contains(body, `"service":"httpd"`) {
		t.Errorf("the added service: %q %v\n%s", body, err, s.stderr)
	}

	// SIGTERM: every unikernel stops, and mote serve with them.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mote serve did not end on SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("mote serve: status %d", code)
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, 0); err == nil {
		t.Errorf("processes of mote serve's group remain after it ended")
	}
}

func readNetTCP() string {
	b, _ := os.ReadFile("/proc/net/tcp")
	return string(b)
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), []byte("x"), 0o644)
	for _, tc := range []struct{ config, want string }{
		{`{"services": [{"name": "a b", "image": "img", "ports": ["1:80"]}]}`, "unique name"},
		{`{"services": [{"name": "a", "image": "none", "ports": ["1:80"]}]}`, "not a file"},
		{`{"services": [{"name": "a", "image": "img", "ports": []}]}`, "no ports"},
		{`{"services": [{"name": "a", "image": "img", "ports": ["80"]}]}`, "HOSTPORT:PORT"},
		{`{"services": [{"name": "a", "image": "img", "ports": ["1:80"], "target": "unix"}]}`, "hvt or spt"},
		{`{"services": [{"name": "a", "image": "img", "ports": ["1:80"], "idle": "10ms"}]}`, "1s or more"},
		{`{"services": [{"name": "a", "image": "img", "ports": ["1:80"], "colour": "red"}]}`, "unknown field"},
	} {
		config := filepath.Join(dir, "c.json")
		os.WriteFile(config, []byte(tc.config), 0o644)
		if o := mote(t, "serve", config); o.status != exitUsage || !strings.Contains(o.stderr, tc.want) {
			t.Errorf("%s: status %d, %q; want %d and %q", tc.config, o.status, o.stderr, exitUsage, tc.want)
		}
	}
}

// BenchmarkServe (bench/run serve): MOTE_SERVE_N services (default
// 10,000), each on its own loopback address, registered in one mote
// serve: its memory beside a mote serve of one service, its idle CPU, and
// the first answer of 20 of them started cold, one after another. With
// MOTE_SERVE_JSON set it writes its figures there and into
// docs/benchmarks.md.
func BenchmarkServe(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("MOTE_SERVE_N")); err == nil && v > 0 {
		n = v
	}
	target := "spt"
	if kvmOK() {
		target = "hvt"
	}
	dir := b.TempDir()
	image := filepath.Join(dir, "httpd."+target)
	build := exec.Command(moteBin, "build", "-t", target, "-o", image, "./examples/httpd")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("mote build: %v\n%s", err, out)
	}
	addr := func(i int) string { return fmt.Sprintf("127.1.%d.%d:8080", i/250, 1+i%250) }
	serve := func(k int) (*exec.Cmd, func()) {
		var svcs []string
		for i := 0; i < k; i++ {
			svcs = append(svcs, fmt.Sprintf(`{"name": "s%d", "image": %q, "target": %q, "memory": "32M", "ports": ["%s:8080"], "idle": "2s"}`, i, image, target, addr(i)))
		}
		config := filepath.Join(dir, fmt.Sprintf("serve-%d.json", k))
		os.WriteFile(config, []byte(`{"services": [`+strings.Join(svcs, ",\n")+`]}`), 0o644)
		cmd := exec.Command(moteBin, "serve", config)
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// Listening when every socket is open (one descriptor each).
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
			if len(fds) >= k+3 {
				break
			}
			if time.Now().After(end) {
				b.Fatalf("mote serve opened %d descriptors of %d", len(fds), k+3)
			}
		}
		time.Sleep(time.Second)
		return cmd, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	}
	pssKiB := func(pid int) float64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				return v
			}
		}
		return 0
	}
	ticks := func(pid int) float64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return u + s
	}
	for it := 0; it < b.N; it++ {
		one, stop := serve(1)
		base := pssKiB(one.Process.Pid)
		stop()
		many, stop := serve(n)
		all := pssKiB(many.Process.Pid)
		t0 := ticks(many.Process.Pid)
		time.Sleep(10 * time.Second)
		idleCPU := ticks(many.Process.Pid) - t0 // ticks in 10 s: % of one CPU ×10
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		var firsts []float64
		for k := 0; k < 20; k++ {
			i := k * (n / 20)
			began := time.Now()
			resp, err := hc.Get("http://" + addr(i) + "/")
			if err != nil {
				b.Fatalf("service %d: %v", i, err)
			}
			resp.Body.Close()
			firsts = append(firsts, float64(time.Since(began).Microseconds())/1000)
		}
		stop()
		sort.Float64s(firsts)
		perService := (all - base) / float64(n-1) // KiB
		r := serveResult{Services: n, Target: target, ServeBaseMiB: base / 1024, ServeAllMiB: all / 1024, PerServiceKiB: perService,
			IdleCPUPercent: idleCPU / 10, FirstAnswerMs: firsts[len(firsts)/2], FirstAnswerMinMs: firsts[0], FirstAnswerMaxMs: firsts[len(firsts)-1]}
		b.ReportMetric(perService, "KiB/idle-service")
		b.ReportMetric(r.FirstAnswerMs, "ms/first-answer")
		b.ReportMetric(r.IdleCPUPercent, "%CPU-idle")
		writeServeResult(b, r)
	}
}

type serveResult struct {
	Date, Machine, Target                    string
	Services                                 int
	ServeBaseMiB, ServeAllMiB, PerServiceKiB float64
	IdleCPUPercent                           float64
	FirstAnswerMs, FirstAnswerMinMs          float64
	FirstAnswerMaxMs                         float64
}

func writeServeResult(b *testing.B, r serveResult) {
	out := os.Getenv("MOTE_SERVE_JSON")
	if out == "" {
		return
	}
	r.Date, r.Machine = time.Now().UTC().Format("2006-01-02"), benchreport.Machine()
	js, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	body := fmt.Sprintf("Measured %s on %s: %d services in one mote serve (each its own loopback address, examples/httpd on %s, 32 MiB, idle 2 s).\n\n"+
		"| figure | value |\n|---|---|\n"+
		"| mote serve with 1 service, PSS | %.1f MiB |\n| with %d services registered, idle, PSS | %.1f MiB |\n| per idle service beyond the server | %.1f KiB (%d together: %.1f MiB) |\n"+
		"| mote serve's CPU while all are idle (10 s) | %.2f%% of one CPU |\n| first answer of a cold service (20 of them, one after another; Go client, new connection) | %.0f ms median (%.0f–%.0f) |\n",
		r.Date, r.Machine, r.Services, r.Target, r.ServeBaseMiB, r.Services, r.ServeAllMiB, r.PerServiceKiB, r.Services, r.PerServiceKiB*float64(r.Services)/1024,
		r.IdleCPUPercent, r.FirstAnswerMs, r.FirstAnswerMinMs, r.FirstAnswerMaxMs)
	if err := benchreport.Splice("../../docs/benchmarks.md", "serve", body); err != nil {
		b.Fatal(err)
	}
}

// Idle stops racing new connections: requests spaced around the idle
// time (1 s) catch the unikernel as it stops and as it starts; none may
// be lost.
func TestServeNoConnectionLostAtIdleStop(t *testing.T) {
	target := "spt"
	if kvmOK() {
		target = "hvt"
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "httpd."+target)
	if o := mote(t, "build", "-t", target, "-o", image, "./examples/httpd"); o.status != 0 {
		t.Fatalf("mote build: %s", o.stderr)
	}
	port := freePort(t, "tcp")
	config := filepath.Join(dir, "serve.json")
	os.WriteFile(config, fmt.Appendf(nil, `{"services": [{"name": "web", "image": %q, "target": %q, "memory": "32M", "ports": ["127.0.0.1:%d:8080"], "idle": "1s"}]}`, image, target, port), 0o644)
	s := start(t, "serve", config)
	waitFor(t, "mote serve's socket", func() bool { return strings.Contains(readNetTCP(), fmt.Sprintf(":%04X", port)) })
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	gaps := []time.Duration{900, 1000, 1100, 1200, 950, 1050, 1150, 1000, 1250, 1100}
	for i, g := range gaps {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatalf("request %d lost: %v\nmote serve:\n%s", i, err, s.stderr)
		}
		resp.Body.Close()
		time.Sleep(g * time.Millisecond)
	}
	if n := strings.Count(s.stderr.String(), "web: started"); n < 2 {
		t.Errorf("started %d times: the requests never met an idle stop", n)
	} else {
		t.Logf("%d requests across %d starts, none lost", len(gaps), n)
	}
}
