// Package runsc runs a static binary under gVisor's runsc, the strongest
// peer that runs on this machine, the way it runs here (DESIGN.md §6):
// `runsc run` of a minimal OCI bundle whose root file system is the binary
// alone, ptrace platform, the host's network (the bundle drops the
// network namespace, which runsc's sandbox networking cannot set up here),
// no cgroups.
package runsc

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
)

// Available reports whether runsc is installed.
func Available() bool {
	_, err := exec.LookPath("runsc")
	return err == nil
}

// Container is one bundle, run at most once.
type Container struct {
	ID  string
	dir string
}

var seq atomic.Int64

// New writes a bundle that runs bin with args.
func New(bin string, args ...string) (*Container, error) {
	dir, err := os.MkdirTemp("", "mote-runsc-")
	if err != nil {
		return nil, err
	}
	c := &Container{ID: fmt.Sprintf("mote-bench-%d-%d", os.Getpid(), seq.Add(1)), dir: dir}
	if err := c.write(bin, args); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Container) write(bin string, args []string) error {
	if err := os.MkdirAll(filepath.Join(c.dir, "rootfs"), 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	name := "/" + filepath.Base(bin)
	if err := os.WriteFile(filepath.Join(c.dir, "rootfs", name), b, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("runsc", append([]string{"spec", "-bundle", c.dir, "--", name}, args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("runsc spec: %v: %s", err, out)
	}
	var spec map[string]any
	raw, err := os.ReadFile(filepath.Join(c.dir, "config.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("runsc spec: %w", err)
	}
	spec["process"].(map[string]any)["terminal"] = false
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	linux := spec["linux"].(map[string]any)
	var ns []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			ns = append(ns, n)
		}
	}
	linux["namespaces"] = ns
	raw, _ = json.Marshal(spec)
	return os.WriteFile(filepath.Join(c.dir, "config.json"), raw, 0o644)
}

// Command is `runsc run` of the bundle; its stdout and stderr are the
// program's.
func (c *Container) Command() *exec.Cmd {
	return exec.Command("runsc", "--ignore-cgroups", "--network=host", "--platform=ptrace", "run", "-bundle", c.dir, c.ID)
}

// Stop sends the program SIGTERM.
func (c *Container) Stop() { exec.Command("runsc", "kill", c.ID, "TERM").Run() }

// Remove kills what is left of the container and deletes it and its
// bundle.
func (c *Container) Remove() {
	exec.Command("runsc", "kill", c.ID, "KILL").Run()
	exec.Command("runsc", "delete", "-force", c.ID).Run()
	os.RemoveAll(c.dir)
}
