package main

import (
	"io"
	"os"
	"strings"
)

const execHelp = `Runs a program built by the go command in a unikernel, as go test -exec
expects of its runner: the working directory (the package's, under go test)
is mounted read-only at its own path and is the guest's working
directory, so a test's testdata/ is there; the arguments after the binary
go to it; the exit status is its own.

    CGO_ENABLED=0 go test -exec 'mote exec -t spt' ./...

Flags before BINARY are mote run's (-t, -m, --net, -v, --strict, ...).
The test binary must be static (CGO_ENABLED=0). It is built by go test,
not mote build, so its net package has no hook to the guest's stack:
tests that listen or dial fail (use --net and mote build for services).
`

// runExec is mote run with the working directory mounted and the first
// argument that is not a flag taken as the binary.
func runExec(args []string, stdout, stderr io.Writer) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return exitError, err
	}
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if f := strings.TrimLeft(args[i], "-"); !strings.Contains(f, "=") && flagTakesValue(f) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return exitUsage, usagef("want a binary to run")
	}
	run := append([]string{"-v", wd + ":" + wd + ":ro", "-w", wd}, args[:i+1]...)
	run = append(append(run, "--"), args[i+1:]...)
	return runRun(run, stdout, stderr)
}

// flagTakesValue reports whether mote run's flag name takes a value.
func flagTakesValue(name string) bool {
	switch name {
	case "strict", "stats", "trace":
		return false
	}
	return true
}
