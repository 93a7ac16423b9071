package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape reads one figure from a --metrics endpoint, or -1.
func scrape(addr, name string, labels ...string) float64 {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if m := regexp.MustCompile(` ([0-9.e+]+)$`).FindStringSubmatch(line); ok && m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
	}
	return -1
}

// mote run --metrics serves the guest's figures while it runs.
func TestMetrics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startIn(t, "../..", moteBin, "run", "-t", "spt", "--metrics", addr, guestBinary(t, "graceful"))
	s.waitFor(t, addr, func() error {
		if scrape(addr, "mote_guest_console_bytes_total") < float64(len("ready\n")) {
			return fmt.Errorf("no console bytes yet")
		}
		return nil
	})
	for _, c := range []struct {
		name string
		min  float64
	}{{"mote_guest_up", 1}, {"mote_guest_starts_total", 1}, {"mote_guest_resident_bytes", 1 << 20}, {"mote_guest_cpu_seconds_total", 0}} {
		if v := scrape(addr, c.name, `target="spt"`); v < c.min {
			t.Errorf("%s = %v, want at least %v", c.name, v, c.min)
		}
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	<-s.done
	if got := mote(t, "run", "-t", "spt", "--metrics", "256.0.0.1:1", guestBinary(t, "hello")); got.status != exitUsage || got.stdout != "" {
		t.Errorf("a bad --metrics address: status %d, stdout %q, stderr %q", got.status, got.stdout, got.stderr)
	}
}

// A background instance's figures last across its restarts.
func TestMetricsAcrossRestarts(t *testing.T) {
	env := stateDir(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	if got := moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "flaky", "--restart", "on-failure:20", "--metrics", addr, guestBinary(t, "panic")); got.status != 0 {
		t.Fatalf("run -d: %d %s", got.status, got.stderr)
	}
	waitFor(t, "three starts", func() bool { return scrape(addr, "mote_guest_starts_total") >= 3 })
	if v := scrape(addr, "mote_guest_exits_total", `reason="failure"`); v < 2 {
		t.Errorf("failures counted: %v", v)
	}
	if v := scrape(addr, "mote_guest_run_seconds_count"); v < 2 {
		t.Errorf("runs timed: %v", v)
	}
}
