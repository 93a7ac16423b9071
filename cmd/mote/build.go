package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/moteos/mote/host/build"
	"github.com/moteos/mote/host/image"
)

const buildHelp = `Builds the Go main package PKG (default: the current directory) for a
target. For hvt and spt the result is a static linux/amd64 binary
(CGO_ENABLED=0, GOAMD64=v1), which is the image itself; for unix it is a host
executable. The output is PKGNAME.TARGET unless -o says otherwise.

flags:
  -t TARGET   unix, hvt or spt (default hvt)
  -o FILE     where to write the artifact
`

func runBuild(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("build", stderr)
	target := fs.String("t", "hvt", "target")
	out := fs.String("o", "", "output file")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 1 {
		return exitUsage, usagef("one package at a time, got %q", fs.Args())
	}
	if err := build.CheckTarget(*target); err != nil {
		return exitUsage, usageError{err.Error()}
	}
	path, err := build.Build(context.Background(), build.Options{Target: *target, Package: fs.Arg(0), Output: *out, Stderr: stderr})
	if err != nil {
		return 1, err
	}
	desc := path
	if st, err := os.Stat(path); err == nil {
		desc = fmt.Sprintf("%s (%.1f MB)", path, float64(st.Size())/1e6)
	}
	if *target != "unix" {
		if _, err := image.Open(path); err != nil {
			return 1, fmt.Errorf("built %s, but it is not a valid image: %w", path, err)
		}
	}
	fmt.Fprintf(stdout, "%s\n", desc)
	return 0, nil
}
