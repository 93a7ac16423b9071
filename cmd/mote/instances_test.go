package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Instances (mote run -d, ps, logs, stop, rm, inspect) on the targets
// that run here without KVM: spt, and unix.

// stateDir gives the test a state directory of its own, and stops
// whatever it left running when it ends.
func stateDir(t *testing.T) []string {
	dir := t.TempDir()
	env := []string{"MOTE_STATE_DIR=" + dir}
	t.Cleanup(func() {
		names := strings.Fields(moteEnv(t, env, "ps", "-q").stdout)
		if len(names) > 0 {
			moteEnv(t, env, append([]string{"rm", "-f"}, names...)...)
		}
	})
	return env
}

// waitFor polls f until it holds or 20 s pass.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("waited 20 s for %s", what)
}

func TestInstanceLifecycle(t *testing.T) {
	for _, target := range []string{"spt", "unix"} {
		t.Run(target, func(t *testing.T) {
			env := stateDir(t)
			got := moteEnv(t, env, "run", "-d", "-t", target, "--name", "svc", guestBinary(t, "graceful"))
			if got.status != 0 || got.stdout != "svc\n" {
				t.Fatalf("run -d: status %d, stdout %q, stderr %q", got.status, got.stdout, got.stderr)
			}
			waitFor(t, "the guest's first line", func() bool { return moteEnv(t, env, "logs", "svc").stdout == "ready\n" })
			ps := moteEnv(t, env, "ps").stdout
			if !strings.Contains(ps, "svc") || !strings.Contains(ps, "running") || !strings.Contains(ps, "MiB") {
				t.Errorf("ps:\n%s", ps)
			}
			// A second instance of the name is refused while it exists.
			if got := moteEnv(t, env, "run", "-d", "-t", target, "--name", "svc", guestBinary(t, "graceful")); got.status != exitError || !strings.Contains(got.stderr, "exists") {
				t.Errorf("second svc: status %d, stderr %q", got.status, got.stderr)
			}
			if got := moteEnv(t, env, "rm", "svc"); got.status == 0 {
				t.Error("rm of a running instance succeeded")
			}
			start := time.Now()
			if got := moteEnv(t, env, "stop", "svc"); got.status != 0 {
				t.Fatalf("stop: %d %s", got.status, got.stderr)
			}
			t.Logf("stop took %v", time.Since(start))
			if logs := moteEnv(t, env, "logs", "svc").stdout; logs != "ready\ngot terminated - shutting down\n" {
				t.Errorf("logs after stop: %q", logs)
			}
			if ps := moteEnv(t, env, "ps").stdout; strings.Contains(ps, "svc") {
				t.Errorf("ps lists a stopped instance without -a:\n%s", ps)
			}
			if ps := moteEnv(t, env, "ps", "-a").stdout; !strings.Contains(ps, "exited (3)") {
				t.Errorf("ps -a:\n%s", ps)
			}
			in := moteEnv(t, env, "inspect", "svc").stdout
			if !strings.Contains(in, `"status": "exited"`) || !strings.Contains(in, `"target": "`+target+`"`) {
				t.Errorf("inspect:\n%s", in)
			}
			if got := moteEnv(t, env, "rm", "svc"); got.status != 0 {
				t.Errorf("rm: %d %s", got.status, got.stderr)
			}
			if got := moteEnv(t, env, "logs", "svc"); got.status == 0 || !strings.Contains(got.stderr, "no such instance") {
				t.Errorf("logs after rm: %d %q", got.status, got.stderr)
			}
		})
	}
}

// A guest that fails is restarted as often as the policy says, with the
// count in ps; one that is stopped is not restarted.
func TestInstanceRestartPolicy(t *testing.T) {
	env := stateDir(t)
	if got := moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "p", "--restart", "on-failure:2", guestBinary(t, "panic")); got.status != 0 {
		t.Fatalf("run -d: %d %s", got.status, got.stderr)
	}
	waitFor(t, "the third exit", func() bool { return strings.Contains(moteEnv(t, env, "ps", "-a").stdout, "exited (2), 2 restarts") })
	if n := strings.Count(moteEnv(t, env, "logs", "p").stdout, "deliberate panic"); n != 3 {
		t.Errorf("%d runs in the log, want 3", n)
	}
	if got := moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "g", "--restart", "on-failure", guestBinary(t, "graceful")); got.status != 0 {
		t.Fatalf("run -d: %d %s", got.status, got.stderr)
	}
	waitFor(t, "ready", func() bool { return moteEnv(t, env, "logs", "g").stdout == "ready\n" })
	moteEnv(t, env, "stop", "g")
	time.Sleep(500 * time.Millisecond)
	for _, row := range strings.Split(moteEnv(t, env, "ps", "-a").stdout, "\n") {
		if strings.HasPrefix(row, "g ") && (!strings.Contains(row, "exited (3)") || strings.Contains(row, "restarts")) {
			t.Errorf("a stopped guest was restarted: %s", row)
		}
	}
	for _, bad := range []string{"always", "on-failure:x", "on-failure:"} {
		if got := moteEnv(t, env, "run", "-d", "--restart", bad, guestBinary(t, "hello")); got.status != exitUsage {
			t.Errorf("--restart %s: status %d", bad, got.status)
		}
	}
	if got := moteEnv(t, env, "run", "--name", "x", guestBinary(t, "hello")); got.status != exitUsage {
		t.Errorf("--name without -d: status %d", got.status)
	}
}

// A runner killed with SIGKILL leaves no guest behind and its instance
// reads as dead, never as running; stop after a guest that ignores
// SIGTERM kills it after the grace period.
func TestInstanceAfterKill(t *testing.T) {
	env := stateDir(t)
	if got := moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "k", guestBinary(t, "escape"), "--", "pid"); got.status != 0 {
		t.Fatalf("run -d: %d %s", got.status, got.stderr)
	}
	var guest int
	waitFor(t, "the guest's pid", func() bool {
		_, err := fmt.Sscanf(moteEnv(t, env, "logs", "k").stdout, "pid %d", &guest)
		return err == nil
	})
	state, err := os.ReadFile(filepath.Join(strings.TrimPrefix(env[0], "MOTE_STATE_DIR="), "instances", "k", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var runner int
	fmt.Sscanf(string(state[strings.Index(string(state), `"pid": `)+7:]), "%d", &runner)
	if runner == 0 || syscall.Kill(runner, syscall.SIGKILL) != nil {
		t.Fatalf("runner pid %d", runner)
	}
	waitFor(t, "the guest's end", func() bool { return syscall.Kill(guest, 0) != nil })
	if ps := moteEnv(t, env, "ps", "-a").stdout; !strings.Contains(ps, "dead") || strings.Contains(ps, "running") {
		t.Errorf("after kill -9 of the runner:\n%s", ps)
	}
	// A guest that stopped itself (SIGSTOP) is still stopped within the
	// grace period.
	if got := moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "stuck", guestBinary(t, "escape"), "--", "stop"); got.status != 0 {
		t.Fatalf("run -d: %d %s", got.status, got.stderr)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if got := moteEnv(t, env, "stop", "-t", "1", "stuck"); got.status != 0 {
		t.Errorf("stop: %d %s", got.status, got.stderr)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("stop -t 1 took %v", d)
	}
	if ps := moteEnv(t, env, "ps", "-a").stdout; !strings.Contains(ps, "stuck") || strings.Contains(ps, "running") {
		t.Errorf("after stop:\n%s", ps)
	}
}

// Two mote run -d racing for one name: one instance, one clear refusal.
func TestInstanceNameRace(t *testing.T) {
	env := stateDir(t)
	var wg sync.WaitGroup
	results := make([]out, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = moteEnv(t, env, "run", "-d", "-t", "spt", "--name", "one", guestBinary(t, "graceful"))
		}()
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		switch {
		case r.status == 0:
			won++
		case !strings.Contains(r.stderr, "exists"):
			t.Errorf("status %d, stderr %q", r.status, r.stderr)
		}
	}
	if won != 1 {
		t.Errorf("%d of 4 racing runs started", won)
	}
	if n := len(strings.Fields(moteEnv(t, env, "ps", "-q").stdout)); n != 1 {
		t.Errorf("%d instances running", n)
	}
}
