// Command runner is /app in nestedkvm's virtual machine: it runs the
// command that /run.json names, with its environment, and prints
// "nestedkvm: exit N" when it ends (N is 125 if it could not start).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// plan is /run.json; nestedkvm.Config writes it.
type plan struct {
	Args []string
	Env  []string
	Dir  string
}

func main() {
	os.Exit(run())
}

func run() (status int) {
	defer func() { fmt.Printf("\nnestedkvm: exit %d\n", status) }()
	b, err := os.ReadFile("/run.json")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nestedkvm:", err)
		return 125
	}
	var p plan
	if err := json.Unmarshal(b, &p); err != nil || len(p.Args) == 0 {
		fmt.Fprintf(os.Stderr, "nestedkvm: bad /run.json: %v\n", err)
		return 125
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		fmt.Fprintf(os.Stderr, "nestedkvm: the virtual machine has no KVM (%v): does QEMU offer SVM here?\n", err)
		return 125
	}
	if err := os.MkdirAll("/tmp", 0o1777); err != nil {
		fmt.Fprintln(os.Stderr, "nestedkvm:", err)
		return 125
	}
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = append([]string{"PATH=/files:/bin", "TMPDIR=/tmp", "HOME=/tmp"}, p.Env...)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nestedkvm:", err)
		return 125
	}
	return 0
}
