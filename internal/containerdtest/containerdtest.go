// Package containerdtest runs a containerd of a test's own, for the
// end-to-end tests of Mote's OCI images and of mote-oci: its root, state
// and socket live in a temporary directory, and it is stopped by its PID
// when the test ends. The host's own containerd, if any, is not touched.
package containerdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is a running containerd.
type Containerd struct {
	Sock string // its gRPC socket
	Dir  string // its root, state, socket and log
	t    testing.TB
}

// Start starts a containerd with the CRI plugin off, or skips the test
// loudly where it cannot run (not root, or no containerd).
func Start(t testing.TB) *Containerd {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil || os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root and containerd (scripts/install-deps installs it)")
	}
	dir := t.TempDir()
	c := &Containerd{Sock: filepath.Join(dir, "sock"), Dir: dir, t: t}
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Sock)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(c.Sock); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("containerd's socket did not appear in 20 s:\n%s", c.Log())
		}
	}
	return c
}

// Log is what containerd has logged.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

// Ctr runs ctr against this containerd and returns its output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", c.Sock}, args...)...).CombinedOutput()
	return string(out), err
}

// MustCtr is Ctr, failing the test on an error.
func (c *Containerd) MustCtr(args ...string) string {
	c.t.Helper()
	out, err := c.Ctr(args...)
	if err != nil {
		c.t.Fatalf("ctr %s: %v\n%s\ncontainerd:\n%s", strings.Join(args, " "), err, out, lastLines(c.Log(), 30))
	}
	return out
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
