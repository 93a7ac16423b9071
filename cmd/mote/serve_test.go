package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	s := start(t, "serve", config)

	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
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
	// Idle for 1 s: it stops; the next clients start it again.
	waitFor(t, "the idle stop", func() bool { return strings.Count(s.stderr.String(), "web: stopped after") == 1 })
	cold("second start")
	if n := strings.Count(s.stderr.String(), "web: started"); n != 2 {
		t.Errorf("web started %d times, want 2:\n%s", n, s.stderr)
	}

	// A service that cannot start: its client is reset, and it waits.
	if _, err := get(bad); err == nil {
		t.Error("a client of a service that cannot start was answered")
	}
	waitFor(t, "the failure's log", func() bool { return strings.Contains(s.stderr.String(), "bad: next start in 1s") })
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
