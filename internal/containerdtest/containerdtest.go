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
	return start(t, "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n", "")
}

// CRI configures containerd's CRI plugin, as a Kubernetes node's
// containerd is configured.
type CRI struct {
	// Handlers are runtime handlers (RuntimeClass handler names) run by
	// the runc shim with a runc of their own: name → BinaryName.
	Handlers map[string]string
	// Shims are runtime handlers with a shim of their own.
	Shims  map[string]Shim
	Bridge string // the pods' bridge, made by CNI's bridge plugin
	Subnet string // the pods' addresses, given by host-local
}

// Shim is a runtime handler with a shim of its own.
type Shim struct {
	Type       string // runtime_type: io.containerd.runsc.v1 runs containerd-shim-runsc-v1
	TypeURL    string // the type of its options, when it reads ConfigPath
	ConfigPath string // the shim's own configuration file, or ""
}

// StartCRI starts a containerd with its CRI plugin on: the runtime
// handlers asked for beside runc, pods networked by CNI's bridge and
// host-local plugins (a configuration of the test's own), and a pause
// image of the test's own, imported, since no registry can be reached. It
// skips loudly where it cannot run (not root; no containerd, crictl or
// CNI plugins).
func StartCRI(t testing.TB, cri CRI) *Containerd {
	t.Helper()
	if _, err := exec.LookPath("crictl"); err != nil {
		t.Skip("SKIPPED LOUDLY: needs crictl (scripts/install-deps installs it from sigs.k8s.io/cri-tools)")
	}
	if _, err := os.Stat(filepath.Join(CNIPlugins, "bridge")); err != nil {
		t.Skip("SKIPPED LOUDLY: needs the CNI plugins in " + CNIPlugins + " (scripts/install-deps installs containernetworking-plugins)")
	}
	dir := t.TempDir()
	netd := filepath.Join(dir, "net.d")
	os.Mkdir(netd, 0o755)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"mote-test","plugins":[{"type":"bridge","bridge":%q,"isGateway":true,
		"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},{"type":"loopback"}]}`,
		cri.Bridge, cri.Subnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(netd, "10-mote-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", cri.Bridge).Run() })
	// restrict_oom_score_adj: a containerd that may not lower its own
	// OOM score (one in a container) must not ask runc to.
	config := fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`, "docker.io/"+pauseName+":"+pauseTag, CNIPlugins, netd)
	for name, bin := range cri.Handlers {
		config += fmt.Sprintf(`  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s.options]
      BinaryName = %q
`, name, name, bin)
	}
	for name, sh := range cri.Shims {
		config += fmt.Sprintf("  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s]\n    runtime_type = %q\n", name, sh.Type)
		if sh.ConfigPath != "" {
			config += fmt.Sprintf("    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s.options]\n      TypeUrl = %q\n      ConfigPath = %q\n", name, sh.TypeURL, sh.ConfigPath)
		}
	}
	c := start(t, "", config)
	c.MustCtr("--namespace", "k8s.io", "images", "import", PauseImage(t, pauseName, pauseTag))
	return c
}

// CNIPlugins is where Debian's containernetworking-plugins puts them.
const CNIPlugins = "/usr/lib/cni"

const pauseName, pauseTag = "mote-test/pause", "1"

// Crictl runs crictl against this containerd and returns its standard
// output.
func (c *Containerd) Crictl(args ...string) (string, error) {
	cmd := exec.Command("crictl", append([]string{"--runtime-endpoint", "unix://" + c.Sock, "--image-endpoint", "unix://" + c.Sock, "--timeout", "60s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 5))
	}
	return strings.TrimSpace(string(out)), err
}

// MustCrictl is Crictl, failing the test on an error.
func (c *Containerd) MustCrictl(args ...string) string {
	c.t.Helper()
	out, err := c.Crictl(args...)
	if err != nil {
		c.t.Fatalf("crictl %s: %v\ncontainerd:\n%s", strings.Join(args, " "), err, lastLines(c.Log(), 30))
	}
	return out
}

func start(t testing.TB, top, plugins string) *Containerd {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil || os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root and containerd (scripts/install-deps installs it)")
	}
	dir := t.TempDir()
	c := &Containerd{Sock: filepath.Join(dir, "sock"), Dir: dir, t: t}
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n%s[grpc]\n  address = %q\n%s",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), top, c.Sock, plugins)
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
