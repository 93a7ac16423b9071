package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/moteos/mote/host/build"
	"github.com/moteos/mote/host/inject"
)

const testHelp = `Runs go test with the package's tests in a unikernel: go test builds the
test binary with Mote's overlay of the net package (so its sockets work,
on the guest's loopback network: httptest servers, a client and server in
one test) and runs it through mote exec.

    mote test -t spt ./...
    mote test -t hvt -run TestHandler -v ./internal/api

Every argument after -t goes to go test. Sockets reach only the test's
own 127.0.0.1 and ::1; files as mote exec gives them.
`

// runTest runs go test with the net overlay and mote exec as the runner.
func runTest(args []string, stdout, stderr io.Writer) (int, error) {
	target := "hvt"
	if len(args) >= 2 && args[0] == "-t" {
		target, args = args[1], args[2:]
	} else if len(args) >= 1 && strings.HasPrefix(args[0], "-t=") {
		target, args = strings.TrimPrefix(args[0], "-t="), args[1:]
	}
	if err := build.CheckTarget(target); err != nil || target == "unix" {
		return exitUsage, usagef("mote test -t hvt|spt: go test itself is the unix target")
	}
	self, err := os.Executable()
	if err != nil {
		return exitError, err
	}
	env := append(os.Environ(), build.Env(target)...)
	cache, err := build.CacheDir()
	if err != nil {
		return exitError, err
	}
	overlay, err := inject.NetOverlay(context.Background(), "", env, cache)
	if err != nil {
		return exitError, err
	}
	cmd := exec.Command("go", append([]string{"test", "-overlay", overlay, "-exec", self + " exec -t " + target}, args...)...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return exitError, err
	}
	return 0, nil
}
