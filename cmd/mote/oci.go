package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/moteos/mote/host/build"
	"github.com/moteos/mote/host/image"
	"github.com/moteos/mote/host/ociimage"
)

// mote build --oci: a unikernel as an OCI image (host/ociimage).

type ociOptions struct {
	file, tag, memory   string
	env, ports, volumes listFlag
	args                []string
}

var (
	refName = regexp.MustCompile(`^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
	refTag  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	portRE  = regexp.MustCompile(`^([0-9]+)(/(tcp|udp))?$`)
)

func buildOCI(target, pkg string, o ociOptions, stdout, stderr io.Writer) (int, error) {
	if target == "unix" {
		return exitUsage, usagef("--oci: an OCI image holds an hvt or spt unikernel, not -t unix")
	}
	name, tag := o.tag, "latest"
	if name == "" {
		base := strings.TrimSuffix(pkg, "/")
		if pkg == "" || pkg == "." {
			base, _ = os.Getwd()
		}
		name = strings.ToLower(filepath.Base(base))
	} else if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
	}
	if !refName.MatchString(name) || !refTag.MatchString(tag) {
		return exitUsage, usagef("--tag %q: want NAME[:TAG], a lower-case name (a/b allowed) and a tag of letters, digits, '_', '.', '-'", o.tag)
	}
	if o.memory != "" {
		mem, err := parseSize(o.memory)
		if err == nil {
			err = checkMemory(mem)
		}
		if err != nil {
			return exitUsage, usagef("-m %s: %v", o.memory, err)
		}
	}
	for _, e := range o.env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return exitUsage, usagef("--env %q: want KEY=VALUE", e)
		}
	}
	var ports []string
	for _, p := range o.ports {
		m := portRE.FindStringSubmatch(p)
		if m == nil {
			return exitUsage, usagef("--port %q: want PORT or PORT/udp", p)
		}
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > 65535 {
			return exitUsage, usagef("--port %q: want a port from 1 to 65535", p)
		}
		if m[3] == "" {
			p += "/tcp"
		}
		ports = append(ports, p)
	}
	for _, v := range o.volumes {
		if !filepath.IsAbs(v) {
			return exitUsage, usagef("--volume %q: want an absolute guest path", v)
		}
	}
	dir, err := os.MkdirTemp("", "mote-oci-")
	if err != nil {
		return exitError, err
	}
	defer os.RemoveAll(dir)
	bin, err := build.Build(context.Background(), build.Options{Target: target, Package: pkg, Output: filepath.Join(dir, "unikernel"), Stderr: stderr})
	if err != nil {
		return 1, err
	}
	if _, err := image.Open(bin); err != nil {
		return 1, fmt.Errorf("built %s, but it is not a valid image: %w", bin, err)
	}
	f, err := os.Create(o.file)
	if err != nil {
		return exitError, err
	}
	d, err := ociimage.Write(f, ociimage.Image{
		Unikernel: bin, Name: name, Tag: tag, Target: target, Memory: o.memory,
		Args: o.args, Env: o.env, Ports: ports, Volumes: o.volumes,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(o.file)
		return exitError, err
	}
	fmt.Fprintf(stdout, "%s %s:%s %s\n", o.file, name, tag, d)
	return 0, nil
}
