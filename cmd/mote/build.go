package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

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

An OCI image instead (hvt, spt), for container tools and registries
(docs/oci.md): ctr images import, podman load and skopeo copy
oci-archive: take it. Arguments after -- are the program's.
  --oci FILE          write an OCI image layout tar to FILE
  --tag NAME[:TAG]    its name (default: the package's, tag latest)
  -m SIZE             the guest memory it asks for
  --env KEY=VALUE     its environment (repeatable)
  --port PORT[/udp]   a port it listens on (repeatable)
  --volume PATH       a guest path where something is mounted (repeatable)
`

func runBuild(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("build", stderr)
	target := fs.String("t", "hvt", "target")
	out := fs.String("o", "", "output file")
	var oci ociOptions
	fs.StringVar(&oci.file, "oci", "", "OCI image layout tar")
	fs.StringVar(&oci.tag, "tag", "", "NAME[:TAG]")
	fs.StringVar(&oci.memory, "m", "", "guest memory")
	fs.Var(&oci.env, "env", "KEY=VALUE")
	fs.Var(&oci.ports, "port", "PORT[/udp]")
	fs.Var(&oci.volumes, "volume", "PATH")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	pkgArgs := fs.Args()
	if i := slices.Index(pkgArgs, "--"); i >= 0 {
		oci.args, pkgArgs = pkgArgs[i+1:], pkgArgs[:i]
	}
	if len(pkgArgs) > 1 {
		return exitUsage, usagef("one package at a time, got %q", pkgArgs)
	}
	pkg := ""
	if len(pkgArgs) == 1 {
		pkg = pkgArgs[0]
	}
	if err := build.CheckTarget(*target); err != nil {
		return exitUsage, usageError{err.Error()}
	}
	if oci.file != "" {
		return buildOCI(*target, pkg, oci, stdout, stderr)
	}
	if oci.tag != "" || oci.memory != "" || len(oci.env)+len(oci.ports)+len(oci.volumes)+len(oci.args) > 0 {
		return exitUsage, usagef("--tag, -m, --env, --port, --volume and program arguments are for --oci")
	}
	path, err := build.Build(context.Background(), build.Options{Target: *target, Package: pkg, Output: *out, Stderr: stderr})
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
