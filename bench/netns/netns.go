// Package netns gives a benchmark a network namespace of its own with a
// TAP device in it, so that a unikernel's TAP networking can be loaded by
// a client (wrk, curl) inside the namespace and nothing leaves it. It needs
// root; Remove deletes the namespace and with it the TAP.
package netns

import (
	"fmt"
	"os"
	"os/exec"
)

// Host is the namespace side's address on the TAP's /24; Guest the
// address the unikernel is given.
const (
	Host  = "10.98.0.1"
	Guest = "10.98.0.2"
	TAP   = "tap0"
)

// NS is a network namespace holding TAP, addressed as Host/24.
type NS struct{ Name string }

// New creates the namespace name (removing a stale one first).
func New(name string) (*NS, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("netns: needs root")
	}
	exec.Command("ip", "netns", "del", name).Run()
	ns := &NS{name}
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "tuntap", "add", "dev", TAP, "mode", "tap"},
		{"-n", name, "addr", "add", Host + "/24", "dev", TAP},
		{"-n", name, "link", "set", TAP, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			ns.Remove()
			return nil, fmt.Errorf("netns: ip %v: %v: %s", args, err, out)
		}
	}
	return ns, nil
}

// Command runs name with args inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Prefix is the command prefix that runs a program inside the namespace.
func (ns *NS) Prefix() []string { return []string{"ip", "netns", "exec", ns.Name} }

// TapArg is mote run's --net argument for a guest on the namespace's TAP.
func (ns *NS) TapArg() string {
	return fmt.Sprintf("tap:%s,addr=%s/24,gw=%s", TAP, Guest, Host)
}

// Remove deletes the namespace and its TAP.
func (ns *NS) Remove() { exec.Command("ip", "netns", "del", ns.Name).Run() }
