// Command mote builds, runs and inspects Mote unikernels.
//
//	mote build [-t unix|hvt|spt] [-o FILE] [PKG]
//	mote run [-t TARGET] [-d [--name N] [--restart on-failure[:N]]] [flags] IMAGE|PKG [-- ARGS]
//	mote serve [--metrics ADDR] CONFIG
//	mote ps [-a] | logs [-f] NAME | stop NAME... | rm NAME...
//	mote inspect IMAGE|NAME
//	mote version
//	mote help [COMMAND]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/moteos/mote/host/spt"
)

// version is set at release time with -ldflags=-X main.version=…; a
// development build reports its module version and VCS state.
var version = ""

// exit statuses of mote itself.
const (
	exitUsage = 2   // bad command line
	exitError = 125 // mote could not do what was asked (as docker run's 125)
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name, args, short, long string
	run                     func(args []string, stdout, stderr io.Writer) (int, error)
}

var commands []command

func init() {
	commands = []command{
		{"build", "[-t unix|hvt|spt] [-o FILE] [PKG]", "build a unikernel image", buildHelp, runBuild},
		{"run", "[-t TARGET] [flags] IMAGE|PKG [-- ARGS]", "run an image, or build and run a package", runHelp, runRun},
		{"test", "[-t hvt|spt] [go test flags] [PKGS]", "run packages' tests in a unikernel", testHelp, runTest},
		{"exec", "[-t TARGET] [flags] BINARY [ARGS]", "run a go test binary in a unikernel (go test -exec)", execHelp, runExec},
		{"serve", "[--metrics ADDR] CONFIG", "run services on demand: start on the first connection, stop when idle", serveHelp, runServe},
		{"ps", "[-a] [-q]", "list instances run in the background", psHelp, runPs},
		{"logs", "[-f] [--since WHEN] [--timestamps] NAME", "show an instance's console", logsHelp, runLogs},
		{"stop", "[-t SECONDS] NAME...", "stop instances", stopHelp, runStop},
		{"rm", "[-f] NAME...", "remove instances", rmHelp, runRm},
		{"inspect", "IMAGE|NAME", "check an image and describe it, or show an instance", inspectHelp, runInspect},
		{"mkimage", "-o FILE DIR", "pack a directory into a file-tree image", mkimageHelp, runMkimage},
		{"cache", "ls|prune", "list or remove hvt's shared copies of images", cacheHelp, runCache},
		{"version", "", "print mote's version", "", runVersion},
		{"help", "[COMMAND]", "show help", "", runHelpCmd},
	}
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == spt.Stage2Arg {
		spt.Stage2() // mote re-executed as the spt target's stage 2
	}
	if len(os.Args) == 3 && os.Args[1] == runnerArg {
		os.Exit(runInstance(os.Args[2])) // mote run -d's runner
	}
	os.Exit(mainStatus(os.Args[1:], os.Stdout, os.Stderr))
}

func mainStatus(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	for _, c := range commands {
		if c.name == args[0] {
			status, err := c.run(args[1:], stdout, stderr)
			var ue usageError
			switch {
			case errors.As(err, &ue):
				fmt.Fprintf(stderr, "mote %s: %v\nusage: mote %s %s (see mote help %s)\n", c.name, err, c.name, c.args, c.name)
				return exitUsage
			case errors.Is(err, flag.ErrHelp):
				return 0
			case err != nil:
				fmt.Fprintf(stderr, "mote: %v\n", err)
				if status == 0 {
					status = exitError
				}
			}
			return status
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "mote: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Mote turns a Go program into a unikernel and runs it.

usage: mote COMMAND [ARGS]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, `
targets: unix (a host process), hvt (a KVM unikernel), spt (a seccomp-confined process)
`)
}

func runHelpCmd(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		usage(stdout)
		return 0, nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			fmt.Fprintf(stdout, "usage: mote %s %s\n\n%s\n", c.name, c.args, c.short)
			if c.long != "" {
				fmt.Fprintf(stdout, "\n%s", c.long)
			}
			return 0, nil
		}
	}
	return exitUsage, usagef("no command %q", args[0])
}

func runVersion(args []string, stdout, stderr io.Writer) (int, error) {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += " " + s.Value[:12]
				}
			}
		}
	}
	fmt.Fprintf(stdout, "mote %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0, nil
}

// newFlags makes a flag set that reports errors to the caller, not by
// exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mote "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}
