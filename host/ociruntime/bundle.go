package ociruntime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/ociimage"
)

// Bounds on what a bundle may hold: a spec is written by the container
// manager, but from an image's config and a pod's manifest, which are
// anyone's.
const (
	maxSpecBytes = 4 << 20 // config.json
	maxArgBytes  = 1 << 20 // args and environment together, as ARG_MAX bounds them
	maxMounts    = 256
	maxImageJSON = 64 << 10 // /mote/image.json
)

// AnnotationTarget, on a container's spec, chooses hvt or spt.
const AnnotationTarget = "org.moteos.mote.target"

// minMemory is the least guest memory mote run takes.
const minMemory = 16 << 20

// Plan is how a bundle runs as a Mote unikernel.
type Plan struct {
	Image    string   // the unikernel, a regular file in the rootfs
	Target   string   // hvt or spt
	Memory   uint64   // guest memory, bytes
	CPUs     int      // guest CPUs
	Args     []string // the program's arguments, after its name
	Env      []string // KEY=VALUE
	Cwd      string
	Hostname string
	Volumes  []Volume
	Terminal bool
	NetNS    string // the network namespace to join, or ""
	NewNetNS bool   // or a new one of its own
	Cgroup   string // the cgroup mote runs in (linux.cgroupsPath), or ""
	DNS      []string
	// Ignored lists what the spec asks for that a unikernel does not
	// honour (docs/kubernetes.md says why), for the runtime's log.
	Ignored []string
}

// Volume is a host directory the guest sees at Guest.
type Volume struct {
	Host, Guest string
	ReadOnly    bool
}

// ErrNotMote says a bundle does not hold a Mote image.
var ErrNotMote = errors.New("not a Mote image")

// LoadSpec reads a bundle's config.json, bounded in size.
func LoadSpec(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSpecBytes {
		return nil, fmt.Errorf("%s/config.json: larger than %d bytes", bundle, maxSpecBytes)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", bundle, err)
	}
	return &s, nil
}

// Rootfs is the spec's root file system as a host path.
func Rootfs(bundle string, s *specs.Spec) (string, error) {
	if s.Root == nil || s.Root.Path == "" {
		return "", errors.New("config.json: no root.path")
	}
	p := s.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	return filepath.Clean(p), nil
}

// openInRoot opens the regular file name inside root, refusing any
// symbolic link on the way (what an image holds must not name files of
// the host) and anything but a regular file: opening a FIFO would hang,
// and opening a device node as root may do something.
func openInRoot(root, name string) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(name, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root + name, Err: err}
	}
	defer unix.Close(fd)
	return reopenRegular(fd, root+name)
}

// reopenRegular opens, to read, the file an O_PATH descriptor names, if
// it is a regular file.
func reopenRegular(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// regularInRoot reports whether name is a regular file inside root,
// reached through no symbolic link.
func regularInRoot(root, name string) error {
	f, err := openInRoot(root, name)
	if err != nil {
		return err
	}
	return f.Close()
}

// imageConfig reads the image's /mote/image.json, or returns ErrNotMote.
func imageConfig(rootfs string) (ociimage.RuntimeConfig, error) {
	var rc ociimage.RuntimeConfig
	f, err := openInRoot(rootfs, ociimage.ConfigPath)
	if errors.Is(err, unix.ENOENT) {
		return rc, ErrNotMote
	}
	if err != nil {
		return rc, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImageJSON+1))
	if err != nil {
		return rc, err
	}
	if len(b) > maxImageJSON {
		return rc, fmt.Errorf("%s: larger than %d bytes", ociimage.ConfigPath, maxImageJSON)
	}
	if err := json.Unmarshal(b, &rc); err != nil {
		return rc, fmt.Errorf("%s: %w", ociimage.ConfigPath, err)
	}
	if rc.Version != 1 {
		return rc, fmt.Errorf("%s: version %d; this runtime reads version 1", ociimage.ConfigPath, rc.Version)
	}
	return rc, nil
}

// hostnameRE is RFC 1123's host name, as Linux and Kubernetes take it.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// mountedByMote are guest paths whose files Mote makes itself, from the
// host name and the network (vfs): the container manager's copies are
// not needed, and resolv.conf is read for its name servers.
var mountedByMote = map[string]bool{"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true}

// managerFiles are single files container managers mount for their own
// ends, which a unikernel has no use for: Kubernetes' termination message
// and podman's marker of a container.
var managerFiles = map[string]bool{"/dev/termination-log": true, "/run/.containerenv": true}

// NewPlan checks a bundle's spec and makes its Plan. hasKVM says whether
// hvt can run here. It returns ErrNotMote for a bundle that does not
// hold a Mote image.
func NewPlan(bundle string, s *specs.Spec, hasKVM bool) (*Plan, error) {
	rootfs, err := Rootfs(bundle, s)
	if err != nil {
		return nil, err
	}
	if v, ok := s.Annotations[ociimage.AnnotationUnikernel]; ok && v != ociimage.UnikernelPath {
		return nil, fmt.Errorf("annotation %s=%q: a Mote image's unikernel is %s", ociimage.AnnotationUnikernel, v, ociimage.UnikernelPath)
	}
	rc, err := imageConfig(rootfs)
	if errors.Is(err, ErrNotMote) {
		if _, ok := s.Annotations[ociimage.AnnotationUnikernel]; !ok {
			return nil, ErrNotMote
		}
		rc = ociimage.RuntimeConfig{Version: 1, Target: "hvt"}
	} else if err != nil {
		return nil, err
	}
	p := &Plan{Image: filepath.Join(rootfs, ociimage.UnikernelPath), CPUs: 1, Cwd: "/"}
	if err := regularInRoot(rootfs, ociimage.UnikernelPath); err != nil {
		return nil, fmt.Errorf("the unikernel: %w", err)
	}

	// The target: the spec's annotation, else the image's, else hvt;
	// spt where KVM cannot be used, unless hvt was asked for by name.
	p.Target = rc.Target
	if t, ok := s.Annotations[AnnotationTarget]; ok {
		if t != "hvt" && t != "spt" {
			return nil, fmt.Errorf("annotation %s=%q: want hvt or spt", AnnotationTarget, t)
		}
		if t == "hvt" && !hasKVM {
			return nil, fmt.Errorf("annotation %s=hvt, but /dev/kvm cannot be used here", AnnotationTarget)
		}
		p.Target = t
	} else if p.Target != "spt" {
		if p.Target != "hvt" && p.Target != "" {
			return nil, fmt.Errorf("%s: target %q: want hvt or spt", ociimage.ConfigPath, p.Target)
		}
		p.Target = "hvt"
		if !hasKVM {
			p.Target = "spt"
		}
	}

	// Memory: the container's limit, else the image's, else mote's default.
	p.Memory = 64 << 20
	if rc.Memory != "" {
		if p.Memory, err = parseSize(rc.Memory); err != nil {
			return nil, fmt.Errorf("%s: memory: %w", ociimage.ConfigPath, err)
		}
	}
	if l := s.Linux; l != nil && l.Resources != nil {
		r := l.Resources
		if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
			p.Memory = uint64(*r.Memory.Limit)
		}
		if c := r.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
			p.CPUs = int((uint64(*c.Quota) + *c.Period - 1) / *c.Period)
		}
	}
	p.Memory &^= 1<<20 - 1
	if p.Memory < minMemory {
		return nil, fmt.Errorf("memory %d bytes: a Mote guest needs at least %d MiB", p.Memory, minMemory>>20)
	}
	p.CPUs = min(max(p.CPUs, 1), 64)

	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, errors.New("config.json: no process.args")
	}
	pr := s.Process
	if pr.Args[0] != ociimage.UnikernelPath {
		return nil, fmt.Errorf("process.args[0] %q: a Mote image runs %s (arguments go after it)", pr.Args[0], ociimage.UnikernelPath)
	}
	size := 0
	for _, a := range append(pr.Args, pr.Env...) {
		size += len(a) + 1
		if strings.IndexByte(a, 0) >= 0 {
			return nil, errors.New("config.json: a NUL byte in process.args or process.env")
		}
	}
	if size > maxArgBytes {
		return nil, fmt.Errorf("config.json: process.args and process.env hold %d bytes, more than %d", size, maxArgBytes)
	}
	p.Args = pr.Args[1:]
	for _, e := range pr.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("process.env %q: want KEY=VALUE", e)
		}
		p.Env = append(p.Env, e)
	}
	if pr.Cwd != "" {
		if !path.IsAbs(pr.Cwd) {
			return nil, fmt.Errorf("process.cwd %q: not absolute", pr.Cwd)
		}
		p.Cwd = path.Clean(pr.Cwd)
	}
	p.Terminal = pr.Terminal
	if len(pr.Rlimits) > 0 {
		p.Ignored = append(p.Ignored, "process.rlimits")
	}
	// The guest runs as no Linux user and holds no privileges (spt drops
	// every capability; hvt's guest has no Linux at all): what these ask
	// of a process does not apply, and is said so.
	if pr.User.UID != 0 || pr.User.GID != 0 {
		p.Ignored = append(p.Ignored, "process.user")
	}
	if pr.Capabilities != nil {
		p.Ignored = append(p.Ignored, "process.capabilities")
	}
	if s.Linux != nil && s.Linux.Seccomp != nil {
		p.Ignored = append(p.Ignored, "linux.seccomp (Mote's own filter applies)")
	}
	if s.Hostname != "" {
		if !hostnameRE.MatchString(s.Hostname) || len(s.Hostname) > 253 {
			return nil, fmt.Errorf("hostname %q: not a host name", s.Hostname)
		}
		p.Hostname = s.Hostname
	}

	if err := p.mounts(rootfs, s); err != nil {
		return nil, err
	}
	if s.Linux != nil && s.Linux.CgroupsPath != "" {
		if strings.Contains(s.Linux.CgroupsPath, ":") {
			p.Ignored = append(p.Ignored, "linux.cgroupsPath in systemd's form (--systemd-cgroup)")
		} else {
			p.Cgroup = s.Linux.CgroupsPath
		}
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != specs.NetworkNamespace {
				continue
			}
			if ns.Path == "" {
				p.NewNetNS = true
			} else if !filepath.IsAbs(ns.Path) {
				return nil, fmt.Errorf("network namespace %q: not an absolute path", ns.Path)
			} else {
				p.NetNS = ns.Path
			}
		}
	}
	return p, nil
}

// mounts turns the spec's bind mounts of directories into volumes, and
// the image's own top-level directories too; what Mote makes itself
// (/proc, /dev, /sys, /etc's host files) is left out.
func (p *Plan) mounts(rootfs string, s *specs.Spec) error {
	if len(s.Mounts) > maxMounts {
		return fmt.Errorf("config.json: %d mounts, more than %d", len(s.Mounts), maxMounts)
	}
	taken := map[string]bool{}
	for _, m := range s.Mounts {
		dst := path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("mount %q: destination not absolute", m.Destination)
		}
		bind, ro := m.Type == "bind", false
		for _, o := range m.Options {
			bind = bind || o == "bind" || o == "rbind"
			ro = ro || o == "ro" || o == "rro"
		}
		switch {
		case dst == "/proc" || dst == "/sys" || dst == "/dev" || strings.HasPrefix(dst, "/proc/") || strings.HasPrefix(dst, "/sys/") || strings.HasPrefix(dst, "/dev/"):
			continue // Mote's own
		case !bind:
			p.Ignored = append(p.Ignored, fmt.Sprintf("mount %s (%s)", dst, m.Type))
			continue
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			return fmt.Errorf("mount %s: source %q not absolute", dst, src)
		}
		src = filepath.Clean(src)
		// mote run -v's syntax is SRC:/PATH[:ro]; a path with a colon or
		// a comma in it would say something else.
		if strings.ContainsAny(src+dst, ":,\n") || dst == "/" {
			return fmt.Errorf("mount %s from %s: a path Mote cannot mount (no colon, comma or newline; not /)", dst, src)
		}
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("mount %s: %w", dst, err)
		}
		if mountedByMote[dst] {
			if dst == "/etc/resolv.conf" {
				p.DNS = nameservers(src)
			}
			continue
		}
		if !st.IsDir() {
			if managerFiles[dst] {
				p.Ignored = append(p.Ignored, "mount "+dst)
				continue
			}
			return fmt.Errorf("mount %s from %s: Mote mounts directories, not single files", dst, src)
		}
		p.Volumes = append(p.Volumes, Volume{Host: src, Guest: dst, ReadOnly: ro})
		taken[dst] = true
	}

	// The image's own directories (an image built FROM a Mote image
	// may add files beside /mote), as the rootfs is writable or not.
	ents, err := os.ReadDir(rootfs)
	if err != nil {
		return err
	}
	ro := s.Root.Readonly
	for _, e := range ents {
		n := "/" + e.Name()
		switch {
		case !e.IsDir() || e.Type()&os.ModeSymlink != 0,
			n == "/mote", n == "/proc", n == "/sys", n == "/dev", n == "/etc", n == "/tmp", n == "/"+tmpName,
			taken[n], strings.ContainsAny(n, ":,\n"):
			continue
		}
		p.Volumes = append(p.Volumes, Volume{Host: filepath.Join(rootfs, e.Name()), Guest: n, ReadOnly: ro})
	}
	sort.SliceStable(p.Volumes, func(i, j int) bool { return p.Volumes[i].Guest < p.Volumes[j].Guest })
	return nil
}

// nameservers reads a resolv.conf's name servers (IP addresses, at most
// three, as the resolver takes); a file that is not a small regular one
// gives none.
func nameservers(file string) []string {
	fd, err := unix.Open(file, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	f, err := reopenRegular(fd, file)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	var ns []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(l))
		if len(f) == 2 && f[0] == "nameserver" && net.ParseIP(f[1]) != nil && len(ns) < 3 {
			ns = append(ns, f[1])
		}
	}
	return ns
}

// parseSize reads a size as mote run -m does: 64M, 1G, a bare number of MiB.
func parseSize(s string) (uint64, error) {
	mul := uint64(1 << 20)
	switch {
	case strings.HasSuffix(s, "G"):
		mul, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		s = strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("size %q: want 64M, 1G or a number of MiB", s)
	}
	return n * mul, nil
}

// MoteArgs is the mote command line that runs the plan, with nic as its
// network (tap:…, or "" for none). Every value from the bundle is a
// flag's value (--flag=value) or comes after --, so none can be read as a
// flag of mote's.
func (p *Plan) MoteArgs(nic string) []string {
	a := []string{"run", "-t=" + p.Target, "-m=" + strconv.FormatUint(p.Memory>>20, 10) + "M", "--cpus=" + strconv.Itoa(p.CPUs), "-w=" + p.Cwd}
	if p.Hostname != "" {
		a = append(a, "--hostname="+p.Hostname)
	}
	for _, e := range p.Env {
		a = append(a, "--env="+e)
	}
	for _, v := range p.Volumes {
		s := "-v=" + v.Host + ":" + v.Guest
		if v.ReadOnly {
			s += ":ro"
		}
		a = append(a, s)
	}
	if nic != "" {
		a = append(a, "--net="+nic)
	}
	a = append(a, p.Image, "--")
	return append(a, p.Args...)
}
