package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/build"
	"github.com/moteos/mote/host/hvt"
	"github.com/moteos/mote/host/imagecache"
	"github.com/moteos/mote/host/instance"
	"github.com/moteos/mote/host/net/tap"
	"github.com/moteos/mote/host/net/usernet"
	"github.com/moteos/mote/host/ringdev"
	"github.com/moteos/mote/host/spt"
	"github.com/moteos/mote/host/tarimage"
	"github.com/moteos/mote/host/unixproc"
	"github.com/moteos/mote/host/vfs"
)

const runHelp = `Runs IMAGE, or builds the Go package PKG for the target and runs it.
Arguments after -- go to the program. The exit status is the program's own;
statuses the tender chooses are 125 (could not start), 137 (out of memory),
139 (unhandled fault), 159 (--strict: system call outside the Mote ABI).

flags:
  -t TARGET              unix, hvt or spt (default hvt)
  -d                     run in the background as an instance, print its
                         name and return (mote ps, logs, stop, rm, inspect)
  --name NAME            the instance's name (with -d; default the image's
                         name and a random suffix)
  --restart no|on-failure[:N]
                         with -d: restart the guest when it exits with a
                         failing status, at most N times (default no)
  -m SIZE                guest memory, e.g. 64M, 1G; a bare number is MiB
                         (default 64M, at least 16M; hvt counts every page
                         the guest touches, spt bounds its writable memory
                         to max(2 x SIZE, SIZE+64M); GOMEMLIMIT is 3/4 of it)
  --cpus N               CPUs the guest runs on (default 1; on spt it sets
                         GOMAXPROCS, without pinning)
  --env KEY=VALUE        add to the program's environment (repeatable)
  --net user[,host=off]|tap:IFNAME[,addr=CIDR][,gw=IP][,dns=IP][,mac=MAC][,mtu=N]
                         add a network interface (repeatable; hvt, spt). user needs
                         no privileges: the guest is 10.0.2.15, the host is
                         reachable as 10.0.2.2 (host=off closes it: no
                         host loopback service), DNS is 10.0.2.3. tap attaches
                         to an existing TAP interface, with the guest's
                         address given here. On unix the program uses the
                         host's network.
  -p [IP:]HOSTPORT:PORT[/udp]
                         publish a guest port on the host (default IP
                         127.0.0.1; needs --net user; repeatable);
                         fd:N:PORT takes the listening TCP socket inherited
                         as descriptor N, and the connections waiting on it
  --wait-ports DURATION  a connection to a published TCP port waits this
                         long for the guest to listen (default 0: closed
                         at once while the guest does not listen)
  --idle-exit DURATION   stop the guest, as SIGTERM does, once no connection
                         to a published TCP port has been open for this long
  --block NAME=FILE[,ro] a block device backed by FILE (repeatable)
  --fs NAME=DIR|IMAGE    a read-only file tree: on unix a directory; on hvt a
                         directory (packed on the fly) or an image made by
                         mote mkimage (repeatable)
  -v SRC:/PATH[:ro]      mount the host directory SRC at PATH in the guest
                         (hvt, spt; repeatable; ro: read-only), or a
                         file-tree image SRC made by mote mkimage (always
                         read-only). Nothing can
                         be reached outside it: no .., symlink or rename
                         escapes. /etc/hosts, /etc/resolv.conf, /etc/passwd,
                         /etc/group and /etc/hostname are made for the guest,
                         /tmp is a writable directory of its own, and the
                         host's /usr/share/zoneinfo is there read-only
  -w DIR                 the guest's working directory (default /)
  --hostname NAME        the guest's host name (default mote)
  --strict               stop the guest on a system call outside the ABI
  --stats                print exit counts and times when the guest ends
  --trace                print every exit as it happens
  --metrics ADDR         serve Prometheus metrics at http://ADDR/metrics while
                         it runs (with -d: across restarts): up, starts, exits
                         by reason, run time, CPU, memory, I/O, console bytes,
                         NIC frames
  --profile FILE         write the guest's CPU profile (pprof format) to FILE
                         when it ends, sampled from outside (hvt; read it with
                         go tool pprof FILE)

environment:
  MOTE_IMAGE_CACHE=DIR|off
                         where hvt keeps one shared-memory copy of each image
                         it boots, which starts it sooner (default
                         /dev/shm/mote-UID; at most 8 copies, least recently
                         used removed first; off: boot from the file itself;
                         a package built by this run is never copied;
                         mote cache ls|prune lists or removes the copies)
`

// imageCacheDir is where hvt keeps shared copies of images, or "" for
// none: MOTE_IMAGE_CACHE decides, and an image built for one run is not
// worth copying.
func imageCacheDir(o runOptions) string {
	switch dir := os.Getenv("MOTE_IMAGE_CACHE"); {
	case o.built || dir == "off":
		return ""
	case dir != "":
		return dir
	}
	return imagecache.DefaultDir()
}

// runFlags are mote run's flags, set into o (mote exec parses the same).
func runFlags(o *runOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlags("run", stderr)
	fs.StringVar(&o.target, "t", "hvt", "target")
	fs.StringVar(&o.memory, "m", "64M", "guest memory (64M, 1G; a bare number is MiB)")
	fs.IntVar(&o.cpus, "cpus", 1, "guest CPUs")
	fs.Var(&o.env, "env", "KEY=VALUE")
	fs.Var(&o.nets, "net", "user or tap:IFNAME")
	fs.Var(&o.publish, "p", "publish a port")
	fs.Var(&o.blocks, "block", "NAME=FILE[,ro]")
	fs.Var(&o.trees, "fs", "NAME=DIR")
	fs.Var(&o.volumes, "v", "SRC:/PATH[:ro]")
	fs.StringVar(&o.workdir, "w", "/", "working directory in the guest")
	fs.StringVar(&o.host, "hostname", "mote", "the guest's host name")
	fs.BoolVar(&o.strict, "strict", false, "")
	fs.BoolVar(&o.stats, "stats", false, "")
	fs.BoolVar(&o.trace, "trace", false, "")
	fs.StringVar(&o.profile, "profile", "", "FILE")
	fs.StringVar(&o.metrics, "metrics", "", "ADDR")
	fs.DurationVar(&o.waitPorts, "wait-ports", 0, "DURATION")
	fs.DurationVar(&o.idleExit, "idle-exit", 0, "DURATION")
	return fs
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type runOptions struct {
	target    string
	memory    string
	cpus      int
	env       listFlag
	exe       string // the program's path as the guest sees it (/proc/self/exe)
	nets      listFlag
	publish   listFlag
	blocks    listFlag
	trees     listFlag
	volumes   listFlag
	workdir   string
	host      string
	strict    bool
	stats     bool
	trace     bool
	profile   string
	metrics   string        // serve Prometheus metrics here
	waitPorts time.Duration // published connections wait this long for the guest
	idleExit  time.Duration // stop the guest after this long without a published connection
	built     bool          // the image was built for this run alone

	onNIC func(name string, dev *ringdev.Device) // each NIC's mover, for --metrics

	detach  bool   // mote run -d
	name    string // the instance's name
	restart string // its restart policy
}

func runRun(args []string, stdout, stderr io.Writer) (int, error) {
	var o runOptions
	fs := runFlags(&o, stderr)
	fs.BoolVar(&o.detach, "d", false, "run in the background")
	fs.StringVar(&o.name, "name", "", "the instance's name")
	fs.StringVar(&o.restart, "restart", "no", "no or on-failure[:N]")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("want an image or a package")
	}
	what, guestArgs := fs.Arg(0), fs.Args()[1:]
	if len(guestArgs) > 0 && guestArgs[0] == "--" {
		guestArgs = guestArgs[1:]
	} else if len(guestArgs) > 0 {
		// Flags stop at the image, as go run's do: one of mote's after it
		// is the program's, which is rarely what was meant.
		name, _, _ := strings.Cut(strings.TrimLeft(guestArgs[0], "-"), "=")
		if strings.HasPrefix(guestArgs[0], "-") && fs.Lookup(name) != nil {
			fmt.Fprintf(stderr, "mote: %s comes after the image, so the program gets it: mote's flags go before the image (write -- before the program's own flags to say they are its)\n", guestArgs[0])
		}
	}
	mem, err := o.check()
	if err != nil {
		return exitUsage, err
	}
	if !o.detach && (o.name != "" || o.restart != "no") {
		return exitUsage, usagef("--name and --restart are for mote run -d")
	}
	var policy instance.Restart
	if o.detach {
		if policy, err = parseRestart(o.restart); err != nil {
			return exitUsage, err
		}
	}
	image := what
	if st, serr := os.Stat(what); serr != nil || !st.Mode().IsRegular() {
		dir, err := os.MkdirTemp("", "mote-run-")
		if err != nil {
			return exitError, err
		}
		defer os.RemoveAll(dir)
		// Ctrl-C or SIGTERM during the build stops it and lets the
		// deferred clean-up run: it left the directory, and the half-built
		// image in it, behind.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
		image, err = build.Build(ctx, build.Options{
			Target: o.target, Package: what, Output: filepath.Join(dir, build.Name(what, "")), Stderr: stderr,
		})
		interrupted := ctx.Err() != nil
		stop()
		if interrupted {
			return 130, errors.New("interrupted while building " + what)
		}
		if err != nil && errors.Is(serr, os.ErrNotExist) && looksLikeImage(what) {
			// A mistyped image path: the toolchain's complaint about
			// modules would only mislead.
			return exitError, fmt.Errorf("no such image or package: %s (no file by that name; as a package: %v)", what, err)
		}
		if err != nil {
			return exitError, err
		}
		o.built = true
	} else if o.target == "unix" && !strings.Contains(image, "/") {
		image = "./" + image // a file here, as hvt and spt take it, not one on $PATH
	}
	if o.detach {
		flags := args[:len(args)-fs.NArg()]
		return runDetached(o, policy, flags, what, image, guestArgs, stdout, stderr)
	}
	mx, err := startMetrics(o.metrics, filepath.Base(image), what, o.target)
	if err != nil {
		return exitUsage, err
	}
	defer mx.close()
	o.onNIC = mx.onNIC()
	stdout, stderr = mx.counting(stdout), mx.counting(stderr)
	return mx.run(func() (int, error) { return runTarget(o, image, mem, guestArgs, stdout, stderr) })
}

// check validates the options that need no image, and returns the
// guest's memory in bytes.
func (o *runOptions) check() (uint64, error) {
	if err := build.CheckTarget(o.target); err != nil {
		return 0, usageError{err.Error()}
	}
	if o.profile != "" && o.target != "hvt" {
		return 0, usagef("--profile is for -t hvt: on %s the program is a host process, for perf or runtime/pprof", o.target)
	}
	mem, err := parseSize(o.memory)
	if err != nil {
		return 0, usagef("-m %s: %v", o.memory, err)
	}
	if err := checkMemory(mem); err != nil {
		return 0, usagef("-m %s: %v", o.memory, err)
	}
	if o.cpus < 1 || o.cpus > 64 {
		return 0, usagef("--cpus %d: want 1 to 64", o.cpus)
	}
	for _, e := range o.env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return 0, usagef("--env %q: want KEY=VALUE", e)
		}
	}
	return mem, nil
}

// runTarget runs image on o's target.
func runTarget(o runOptions, image string, mem uint64, guestArgs []string, stdout, stderr io.Writer) (int, error) {
	switch o.target {
	case "unix":
		return runUnix(o, image, guestArgs, stdout, stderr)
	case "spt":
		return runSPT(o, image, mem, guestArgs, stdout, stderr)
	}
	return runHVT(o, image, mem, guestArgs, stdout, stderr)
}

func runUnix(o runOptions, binary string, args []string, stdout, stderr io.Writer) (int, error) {
	man := &abi.Manifest{Version: abi.Version, Target: abi.TargetUnix}
	for _, n := range o.nets {
		if n != "host" {
			fmt.Fprintf(stderr, "mote: --net %s ignored: the unix target uses the host's network\n", n)
		}
	}
	if len(o.publish) > 0 {
		fmt.Fprintln(stderr, "mote: -p ignored: on the unix target the program listens on the host directly")
	}
	var ignored []string
	for _, f := range []struct {
		on   bool
		name string
	}{{o.strict, "--strict"}, {o.stats, "--stats"}, {o.trace, "--trace"}} {
		if f.on {
			ignored = append(ignored, f.name)
		}
	}
	if len(ignored) > 0 {
		fmt.Fprintf(stderr, "mote: %s ignored: on the unix target the program is an ordinary process, not confined to the Mote ABI (use -t spt or -t hvt)\n", strings.Join(ignored, ", "))
	}
	for _, b := range o.blocks {
		name, path, ro, err := parseBlock(b)
		if err != nil {
			return exitUsage, usageError{err.Error()}
		}
		st, err := os.Stat(path)
		if err != nil {
			return exitError, fmt.Errorf("--block %s: %w", b, err)
		}
		if st.Size()%512 != 0 {
			return exitError, fmt.Errorf("--block %s: %s is %d bytes, not a multiple of 512", b, path, st.Size())
		}
		man.Block = append(man.Block, abi.Block{Name: name, Path: path, SectorSize: 512, Sectors: st.Size() / 512, ReadOnly: ro})
	}
	for _, t := range o.trees {
		name, dir, ok := strings.Cut(t, "=")
		if !ok || !abi.ValidName(name) || dir == "" {
			return exitUsage, usagef("--fs %q: want NAME=DIR with a lower-case name", t)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return exitError, fmt.Errorf("--fs %s: %s is not a directory", t, dir)
		}
		man.FS = append(man.FS, abi.Tree{Name: name, Path: dir})
	}
	if err := man.Validate(); err != nil {
		return exitUsage, usageError{err.Error()}
	}
	return unixproc.Run(context.Background(), unixproc.Config{
		Binary: binary, Args: args, Env: o.env, Manifest: man, Stdout: stdout, Stderr: stderr,
	})
}

func runHVT(o runOptions, image string, mem uint64, args []string, stdout, stderr io.Writer) (int, error) {
	cfg := hvt.Config{Image: image, Args: args, Env: guestEnv(o.env), Memory: mem, CPUs: o.cpus, Strict: o.strict,
		Stdout: stdout, Stderr: stderr, ImageCache: imageCacheDir(o), OnNIC: o.onNIC, Confine: true}
	if o.stats {
		cfg.Stats = stderr
	}
	if o.trace {
		cfg.Trace = stderr
	}
	if o.profile != "" {
		// Created before the guest starts, so that a bad path costs no run.
		f, err := os.Create(o.profile)
		if err != nil {
			return exitError, fmt.Errorf("--profile: %w", err)
		}
		defer f.Close()
		cfg.Profile = f
	}
	o.exe = "/" + filepath.Base(image)
	devs, status, err := o.devices()
	if err != nil {
		return status, err
	}
	defer devs.close()
	for _, n := range devs.nics {
		cfg.NICs = append(cfg.NICs, hvt.NIC{NIC: n.NIC, HostFD: n.hostFD})
	}
	for _, b := range devs.blocks {
		cfg.Blocks = append(cfg.Blocks, hvt.Block{Name: b.name, File: b.file, ReadOnly: b.readOnly, SectorSize: b.sector})
	}
	cfg.Trees = devs.trees
	cfg.Ready = devs.ready
	cfg.Files, cfg.Cwd = devs.files, o.workdir
	if err := kvmUsable("/dev/kvm"); err != nil {
		// A bad image is the first thing to say, whatever the host has.
		// With KVM, Run says it (it opens the image first); without, it
		// is checked here, so that no start parses the image twice.
		if err := hvt.CheckImage(image); err != nil {
			report(stderr, err.Error())
			return hvt.ExitTender, nil
		}
		return exitError, err
	}
	status, err = hvt.Run(context.Background(), cfg)
	var ee *hvt.ExitError
	if errors.As(err, &ee) {
		report(stderr, ee.Report)
		return ee.Status, nil
	}
	return status, err
}

// report prints a tender's report of why a guest stopped, as every line
// mote prints begins: with "mote:".
func report(w io.Writer, r string) {
	if !strings.HasPrefix(r, "mote:") {
		r = "mote: " + r
	}
	fmt.Fprintln(w, r)
}

// runSPT runs the image as a seccomp-confined process: the same devices as
// hvt, each NIC rings the guest maps, its frames moved by a thread in mote.
func runSPT(o runOptions, image string, mem uint64, args []string, stdout, stderr io.Writer) (int, error) {
	if o.stats || o.trace {
		fmt.Fprintln(stderr, "mote: --stats and --trace are for hvt; spt guests make ordinary system calls")
	}
	cfg := spt.Config{Image: image, Args: args, Env: guestEnv(o.env), Memory: mem, CPUs: o.cpus, Strict: o.strict, Stdout: stdout, Stderr: stderr, OnNIC: o.onNIC}
	o.exe = "/" + filepath.Base(image)
	devs, status, err := o.devices()
	if err != nil {
		return status, err
	}
	defer devs.close()
	for _, n := range devs.nics {
		cfg.NICs = append(cfg.NICs, spt.NIC{NIC: n.NIC, HostFD: n.hostFD})
	}
	for _, b := range devs.blocks {
		cfg.Blocks = append(cfg.Blocks, spt.Block{Name: b.name, File: b.file, ReadOnly: b.readOnly, SectorSize: b.sector})
	}
	cfg.Trees = devs.trees
	cfg.Ready = devs.ready
	cfg.Files, cfg.Cwd = devs.files, o.workdir
	status, err = spt.Run(context.Background(), cfg)
	var ee *spt.ExitError
	if errors.As(err, &ee) {
		report(stderr, ee.Report)
		return ee.Status, nil
	}
	return status, err
}

// fileTree makes the guest's file tree from -v, --hostname and the
// NICs' DNS servers, with a writable /tmp of its own (a host temporary
// directory, removed by the returned function) unless -v mounts one. A
// mount source that does not exist is an error here, before the guest
// starts.
func (o runOptions) fileTree(nics []nicDev) (*vfs.FS, func(), error) {
	u, _ := user.Current()
	cfg := vfs.Config{Hostname: o.host, UID: os.Getuid(), GID: os.Getgid(), Home: guestHome, Executable: o.exe}
	if u != nil {
		cfg.User = u.Username
	}
	for _, n := range nics {
		cfg.DNS = append(cfg.DNS, n.DNS...)
	}
	var unpacked []string // image sources, unpacked for the run
	cleanup := func() {
		for _, d := range unpacked {
			os.RemoveAll(d)
		}
	}
	tmp, zoneinfo := true, true
	for _, v := range o.volumes {
		m, image, err := parseVolume(v)
		if err == nil && image {
			// A file-tree image (mote mkimage): its files in a private
			// directory of mote's, mounted read-only, gone with the run.
			var dir string
			if dir, err = os.MkdirTemp("", "mote-image-"); err == nil {
				unpacked = append(unpacked, dir)
				if err = tarimage.Unpack(m.Host, dir); err != nil {
					err = fmt.Errorf("-v %s: %w", v, err)
				}
				m.Host = dir
			}
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
		tmp = tmp && path.Clean(m.Guest) != "/tmp"
		zoneinfo = zoneinfo && !strings.HasPrefix(path.Clean(m.Guest)+"/", zoneinfoDir+"/")
	}
	// The host's time zone database, read-only: public data, which
	// time.LoadLocation looks for there before its embedded copy.
	if st, err := os.Stat(zoneinfoDir); zoneinfo && err == nil && st.IsDir() {
		cfg.Mounts = append(cfg.Mounts, vfs.Mount{Guest: zoneinfoDir, Host: zoneinfoDir, ReadOnly: true})
	}
	if tmp {
		// A writable /tmp of the guest's own, gone with it.
		if dir, err := os.MkdirTemp("", "mote-tmp-"); err != nil {
			fmt.Fprintf(os.Stderr, "mote: the guest has no /tmp: %v (set TMPDIR, or mount one with -v DIR:/tmp)\n", err)
		} else {
			unpacked = append(unpacked, dir)
			cfg.Mounts = append(cfg.Mounts, vfs.Mount{Guest: "/tmp", Host: dir})
		}
	}
	fs, err := vfs.New(cfg)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return fs, func() { fs.Close(); cleanup() }, nil
}

// stopWhenIdle ends the guest as SIGTERM does (mote passes it on, and
// kills a guest that has not ended after spt.StopGrace) once no
// connection to a published port has been open for idle.
//
// It stops accepting first: a connection that comes while the guest
// shuts down then waits in the socket's queue (mote serve starts the
// next guest for it) instead of reaching a guest that is leaving; one
// accepted just before is served to its end before the guest stops.
func stopWhenIdle(un *usernet.Network, idle time.Duration) {
	go func() {
		tick := min(idle, time.Second) / 4
		for un.Idle() < idle {
			time.Sleep(tick)
		}
		un.StopAccepting()
		for un.Idle() == 0 {
			time.Sleep(tick)
		}
		unix.Kill(os.Getpid(), unix.SIGTERM)
	}()
}

// parseUser parses --net user[,host=on|off].
func parseUser(spec string) (usernet.Options, error) {
	var opt usernet.Options
	_, rest, _ := strings.Cut(spec, ",")
	for _, kv := range strings.Split(rest, ",") {
		switch kv {
		case "":
		case "host=on":
			opt.NoHost = false
		case "host=off":
			opt.NoHost = true
		default:
			return opt, fmt.Errorf("--net %s: unknown setting %q (want host=on or host=off)", spec, kv)
		}
	}
	return opt, nil
}

// looksLikeImage reports whether what names an image file rather than a
// package, by the suffixes mote build and the docs use.
func looksLikeImage(what string) bool {
	switch filepath.Ext(what) {
	case ".hvt", ".spt", ".unix", ".bin", ".elf":
		return true
	}
	return false
}

// guestHome is a unikernel's home directory, in /etc/passwd and $HOME: its
// writable /tmp, since programs keep caches and state there (caddy's
// certificates and autosaved configuration under $HOME/.local).
const guestHome = "/tmp"

// guestEnv is the environment a unikernel gets: the declared one, and HOME
// unless it is declared, as a login would set it.
func guestEnv(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "HOME="+guestHome)
}

// zoneinfoDir is where Linux keeps the time zone database.
const zoneinfoDir = "/usr/share/zoneinfo"

// parseVolume parses -v SRC:/PATH[:ro], as docker run does: SRC a host
// directory, or a file-tree image (mote mkimage), which is always
// read-only; PATH where the guest sees it.
func parseVolume(v string) (m vfs.Mount, image bool, err error) {
	parts := strings.Split(v, ":")
	ro, rw := false, false
	if len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw") {
		ro, rw = parts[2] == "ro", parts[2] == "rw"
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return m, false, fmt.Errorf("-v %q: want SRC:/PATH[:ro]", v)
	}
	src, err := filepath.Abs(parts[0])
	if err != nil {
		return m, false, err
	}
	st, err := os.Stat(src)
	switch {
	case err != nil:
		return m, false, fmt.Errorf("-v %s: %w", v, err)
	case st.Mode().IsRegular():
		if rw {
			return m, false, fmt.Errorf("-v %s: an image is always read-only", v)
		}
		return vfs.Mount{Guest: parts[1], Host: src, ReadOnly: true}, true, nil
	case !st.IsDir():
		return m, false, fmt.Errorf("-v %s: %s is not a directory or an image", v, src)
	}
	return vfs.Mount{Guest: parts[1], Host: src, ReadOnly: ro}, false, nil
}

// devices are the host ends of a confined guest's devices, as the flags
// ask for them; both confining targets take the same.
type devices struct {
	files   *vfs.FS // the guest's file tree
	nics    []nicDev
	blocks  []blockDev
	trees   []abi.Tree
	closers []func()
	waits   []func() error // host sides still starting (a user network)
}

// ready waits for the devices' host sides to start; the guest must not
// run before it returns nil.
func (d *devices) ready() error {
	for _, w := range d.waits {
		if err := w(); err != nil {
			return err
		}
	}
	return nil
}

type nicDev struct {
	abi.NIC
	hostFD int
}

type blockDev struct {
	name     string
	file     *os.File
	readOnly bool
	sector   int
}

func (d *devices) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// devices opens what --net, -p, --block and --fs ask for. On error it
// returns the status to exit with; what it opened is closed.
func (o runOptions) devices() (_ *devices, status int, err error) {
	d := &devices{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	var pubs []usernet.Publish
	for _, p := range o.publish {
		pb, err := usernet.ParsePublish(p)
		if err != nil {
			return nil, exitUsage, usageError{err.Error()}
		}
		pubs = append(pubs, pb)
	}
	userNets := 0
	for i, n := range o.nets {
		name := fmt.Sprintf("net%d", i)
		mac := randomMAC()
		switch {
		case n == "user" || strings.HasPrefix(n, "user,"):
			if userNets++; userNets > 1 {
				return nil, exitUsage, usagef("--net user: one user network per guest")
			}
			opt, err := parseUser(n)
			if err != nil {
				return nil, exitUsage, usageError{err.Error()}
			}
			opt.WaitGuest = o.waitPorts
			un, err := usernet.New(mac, pubs, opt)
			if err != nil {
				return nil, exitError, err
			}
			if o.idleExit > 0 {
				stopWhenIdle(un, o.idleExit)
			}
			d.closers = append(d.closers, func() { un.Close() })
			d.waits = append(d.waits, un.Ready)
			d.nics = append(d.nics, nicDev{un.NIC(name), un.GuestFD()})
		case strings.HasPrefix(n, "tap:"):
			nic, ifname, err := parseTap(n, name, mac)
			if err != nil {
				return nil, exitUsage, usageError{err.Error()}
			}
			fd, err := tap.Open(ifname)
			if err != nil {
				return nil, exitError, err
			}
			d.nics = append(d.nics, nicDev{nic, fd})
		default:
			return nil, exitUsage, usagef("--net %q: want user or tap:IFNAME", n)
		}
	}
	if o.idleExit > 0 && (userNets == 0 || len(pubs) == 0) {
		return nil, exitUsage, usagef("--idle-exit needs --net user and a published port (-p)")
	}
	if len(pubs) > 0 && userNets == 0 {
		return nil, exitUsage, usagef("-p needs --net user")
	}
	for _, b := range o.blocks {
		name, path, ro, err := parseBlock(b)
		if err != nil {
			return nil, exitUsage, usageError{err.Error()}
		}
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			return nil, exitError, fmt.Errorf("--block %s: %w", b, err)
		}
		d.closers = append(d.closers, func() { f.Close() })
		d.blocks = append(d.blocks, blockDev{name, f, ro, 0})
	}
	var closeFiles func()
	if d.files, closeFiles, err = o.fileTree(d.nics); err != nil {
		return nil, exitError, err
	}
	d.closers = append(d.closers, closeFiles)
	for _, t := range o.trees {
		name, src, ok := strings.Cut(t, "=")
		if !ok || !abi.ValidName(name) || src == "" || len(name) > 29 {
			return nil, exitUsage, usagef("--fs %q: want NAME=DIR or NAME=IMAGE with a short lower-case name", t)
		}
		img, cleanup, err := treeImage(src)
		if err != nil {
			return nil, exitError, fmt.Errorf("--fs %s: %w", t, err)
		}
		d.closers = append(d.closers, cleanup)
		f, err := os.Open(img)
		if err != nil {
			return nil, exitError, err
		}
		d.closers = append(d.closers, func() { f.Close() })
		block := "fs-" + name
		d.blocks = append(d.blocks, blockDev{block, f, true, tarimage.SectorSize})
		d.trees = append(d.trees, abi.Tree{Name: name, Block: block})
	}
	return d, 0, nil
}

// treeImage returns a file-tree image for src: src itself if it is an
// image (checked), or a temporary image packed from the directory src.
func treeImage(src string) (string, func(), error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", nil, err
	}
	if !st.IsDir() {
		return src, func() {}, tarimage.Check(src)
	}
	f, err := os.CreateTemp("", "mote-fs-*.img")
	if err != nil {
		return "", nil, err
	}
	f.Close()
	if _, err := tarimage.PackFile(src, f.Name()); err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

func parseBlock(s string) (name, path string, ro bool, err error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || !abi.ValidName(name) || rest == "" {
		return "", "", false, fmt.Errorf("--block %q: want NAME=FILE[,ro] with a lower-case name", s)
	}
	path = rest
	if p, opt, ok := strings.Cut(rest, ","); ok {
		if opt != "ro" {
			return "", "", false, fmt.Errorf("--block %q: unknown option %q (only ro)", s, opt)
		}
		path, ro = p, true
	}
	return name, path, ro, nil
}

// parseSize reads 64M, 1G, 512MiB, 65536K; a bare number is MiB, as for
// QEMU's -m and Solo5's --mem.
func parseSize(s string) (uint64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := uint64(1 << 20)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSuffix(u, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseUint(u, 10, 64)
	if err != nil || n == 0 {
		return 0, errors.New("want a size such as 64M or 1G")
	}
	return n * mult, nil
}

// kvmUsable says, with what to do, why the hvt target cannot use path.
func kvmUsable(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the hvt target needs KVM, and %s is missing: run on a Linux host with KVM enabled (or nested virtualization), or use -t spt or -t unix", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied: add your user to its group (ls -l %s; usually kvm: sudo usermod -aG kvm $USER, then log in again), or use -t spt or -t unix", path, path)
	}
	return fmt.Errorf("the hvt target needs KVM: %v; or use -t spt or -t unix", err)
}

// minMemory is the least -m any target takes: hvt needs it for the Go
// runtime's first heap and stacks, and one rule serves every target.
const minMemory = 16 << 20

// checkMemory refuses a guest memory size below minMemory or above the
// host's own memory, which no target could give.
func checkMemory(mem uint64) error {
	if mem < minMemory {
		return fmt.Errorf("at least 16M on every target (%s given)", sizeString(mem))
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		if host := uint64(si.Totalram) * uint64(si.Unit); host > 0 && mem > host {
			return fmt.Errorf("more than this host's %s of memory", sizeString(host))
		}
	}
	return nil
}

// sizeString writes a size as -m takes it, in the largest whole unit.
func sizeString(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// randomMAC is a locally administered unicast address.
func randomMAC() string {
	var b [6]byte
	rand.Read(b[:])
	b[0] = b[0]&0xfe | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// parseTap reads tap:IFNAME[,addr=CIDR][,gw=IP][,dns=IP][,mac=MAC][,mtu=N].
func parseTap(s, name, mac string) (abi.NIC, string, error) {
	parts := strings.Split(strings.TrimPrefix(s, "tap:"), ",")
	nic := abi.NIC{Name: name, MAC: mac, MTU: 1500}
	if parts[0] == "" {
		return nic, "", fmt.Errorf("--net %q: no interface name", s)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "addr":
			nic.Addr = v
		case "gw":
			nic.Gateway = v
		case "dns":
			nic.DNS = append(nic.DNS, v)
		case "mac":
			nic.MAC = v
		case "mtu":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nic, "", fmt.Errorf("--net %q: mtu %q: not a number", s, v)
			}
			nic.MTU = n
		default:
			return nic, "", fmt.Errorf("--net %q: unknown option %q (addr, gw, dns, mac, mtu)", s, k)
		}
	}
	return nic, parts[0], nil
}
