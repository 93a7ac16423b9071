package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const execHelp = `Runs a program built by the go command in a unikernel, as go test -exec
expects of its runner: the working directory (the package's, under go test)
is the guest's working directory, and its module (for a
standard-library package, the Go installation) is mounted read-only at
its own path, so a test's testdata/ is there; the arguments after the binary
go to it; the exit status is its own.

    CGO_ENABLED=0 go test -exec 'mote exec -t spt' ./...

Flags before BINARY are mote run's (-t, -m, --net, -v, --strict, ...);
-m is 512M unless given: a test binary holds what its tests allocate, and
Go's own tests allocate far more for a moment than a service runs in
(bytes' tests need more than 64M).
The test binary must be static (CGO_ENABLED=0). It is built by go test,
not mote build, so its net package has no hook to the guest's stack:
tests that listen or dial fail (use --net and mote build for services).
`

// testMemory is a test binary's guest memory unless -m says otherwise.
const testMemory = "512M"

// runExec is mote run with the working directory mounted and the first
// argument that is not a flag taken as the binary.
func runExec(args []string, stdout, stderr io.Writer) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return exitError, err
	}
	// The binary is the first argument that is neither one of mote run's
	// flags nor a value of one.
	runFS := runFlags(new(runOptions), io.Discard)
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if f := runFS.Lookup(strings.TrimLeft(args[i], "-")); f != nil && !isBoolFlag(f) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return exitUsage, usagef("want a binary to run")
	}
	root := treeRoot(wd)
	// -m first, so that the caller's own -m, parsed later, wins.
	run := append([]string{"-m", testMemory, "-v", root + ":" + root + ":ro", "-w", wd}, args[:i+1]...)
	run = append(append(run, "--"), args[i+1:]...)
	return runRun(run, stdout, stderr)
}

// treeRoot is the directory mounted for a test run from wd: the Go
// installation's root for a standard-library package (time's tests read
// ../../lib/time), the module's root for a package of a module (tests may
// read a sibling's testdata), else wd itself. It is mounted read-only.
func treeRoot(wd string) string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot := strings.TrimSpace(string(out))
		if goroot != "" && (wd == goroot || strings.HasPrefix(wd, goroot+"/")) {
			return goroot
		}
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if d == filepath.Dir(d) {
			return wd
		}
	}
}

// isBoolFlag reports whether f takes no value (-strict, not -m 64M).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
