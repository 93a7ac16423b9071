package main

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"

	"github.com/moteos/mote/host/image"
)

const inspectHelp = `Validates an hvt/spt image as the tender would before booting it, and
describes it: Go version, build settings, entry point and segments. Given
the name of an instance (mote run -d) and no file of that name, prints the
instance's settings and state as JSON.
`

func runInspect(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("inspect", stderr)
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("want one image or instance")
	}
	if _, err := os.Stat(fs.Arg(0)); errors.Is(err, os.ErrNotExist) {
		if _, err := openInstance(fs.Arg(0)); err == nil {
			return inspectInstance(fs.Arg(0), stdout)
		}
	}
	img, err := image.Open(fs.Arg(0))
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(stdout, img.Describe())
	fmt.Fprintf(stdout, "  %s\n", moteVersionIn(fs.Arg(0)))
	for _, s := range img.Segments {
		perm := []byte("---")
		if s.Read {
			perm[0] = 'r'
		}
		if s.Write {
			perm[1] = 'w'
		}
		if s.Exec {
			perm[2] = 'x'
		}
		fmt.Fprintf(stdout, "  segment %#x-%#x %s (%d bytes from the file)\n", s.Vaddr, s.Vaddr+s.Memsz, perm, len(s.Data))
	}
	keys := make([]string, 0, len(img.Settings))
	for k := range img.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %s=%s\n", k, img.Settings[k])
	}
	return 0, nil
}

// moteVersionIn says which version of Mote's guest library an image was
// built with, from its Go build information.
func moteVersionIn(path string) string {
	const mod = "github.com/moteos/mote"
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "mote: unknown (no Go build information)"
	}
	for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if m.Path != mod {
			continue
		}
		if m.Replace != nil {
			m = m.Replace
		}
		v := m.Version
		if v == "" || v == "(devel)" {
			v = "a development tree (devel)"
		}
		return "mote: " + v
	}
	return "mote: none (a static binary without Mote's guest library: its network is what the target gives a plain program)"
}
