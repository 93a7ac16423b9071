// Command mote-oci is an OCI runtime with runc's command line: it runs
// containers whose image is a Mote image (mote build --oci) as
// unikernels, on hvt where /dev/kvm can be used and on spt otherwise, and
// hands every other container (a pod's pause container, a sidecar) to
// runc unchanged. containerd's runc shim runs it through the runtime
// option BinaryName, podman through --runtime. See docs/kubernetes.md.
//
//	mote-oci [--root DIR] [--log FILE] [--log-format text|json] COMMAND [flags] ID …
//
// Environment: MOTE_OCI_RUNC names the runc it hands containers to
// (default: runc on $PATH); MOTE_OCI_MOTE the mote command (default: mote
// beside mote-oci, else on $PATH).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/ociimage"
	"github.com/moteos/mote/host/ociruntime"
)

// version is what mote-oci --version prints.
var version = "mote-oci 0.1 (runc-compatible command line; OCI runtime spec " + specs.Version + ")"

func main() {
	if len(os.Args) == 3 && os.Args[1] == ociruntime.InitArg {
		ociruntime.Init(os.Args[2])
	}
	os.Exit(run(os.Args[1:]))
}

// global are runc's global flags.
type global struct {
	root, log, logFormat string
	logger               *slog.Logger
}

func run(args []string) int {
	var g global
	fs := flag.NewFlagSet("mote-oci", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.root, "root", "/run/mote-oci", "state directory")
	fs.StringVar(&g.log, "log", "", "log file")
	fs.StringVar(&g.logFormat, "log-format", "text", "text or json")
	fs.Bool("debug", false, "")
	fs.Bool("systemd-cgroup", false, "")
	fs.String("criu", "", "")
	fs.String("rootless", "", "")
	showVersion := fs.Bool("version", false, "")
	fs.BoolVar(showVersion, "v", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "mote-oci: %v\n", err)
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}
	g.logger = g.openLog()
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mote-oci [--root DIR] [--log FILE] [--log-format text|json] create|start|state|kill|delete|ps|list|features|exec … ID")
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	err := g.command(cmd, rest)
	if err != nil {
		g.logger.Error(err.Error())
		fmt.Fprintf(os.Stderr, "mote-oci: %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// openLog logs where --log says, in its format: containerd's shim reads
// the last "error" of a JSON log as the reason a command failed.
func (g *global) openLog() *slog.Logger {
	// Without a log file only errors go to stderr: it is the container's
	// own (podman shows it as the container's log).
	var w io.Writer = os.Stderr
	level := slog.LevelError
	if g.log != "" {
		if f, err := os.OpenFile(g.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600); err == nil {
			w, level = f, slog.LevelInfo
		}
	}
	lower := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, lower))
	}
	return slog.New(slog.NewTextHandler(w, lower))
}

// valueFlags are, per command, runc's flags that take a value: what
// finding a command's container ID must skip.
var valueFlags = map[string]string{
	"create":     "b bundle pid-file console-socket preserve-fds pidfd-socket",
	"run":        "b bundle pid-file console-socket preserve-fds pidfd-socket",
	"exec":       "console-socket cwd e env p process pid-file process-label apparmor cap c preserve-fds cgroup u user additional-gids g pidfd-socket",
	"ps":         "f format",
	"list":       "f format",
	"events":     "interval",
	"update":     "r resources blkio-weight cpu-period cpu-quota cpu-rt-period cpu-rt-runtime cpu-share cpuset-cpus cpuset-mems kernel-memory kernel-memory-tcp memory memory-reservation memory-swap pids-limit l3-cache-schema mem-bw-schema",
	"checkpoint": "image-path work-path parent-path page-server manage-cgroups-mode empty-ns status-fd lazy-pages",
	"restore":    "image-path work-path parent-path manage-cgroups-mode empty-ns b bundle console-socket pid-file lsm-profile lsm-mount-context",
}

// containerID is the first argument of a command's that is not a flag.
func containerID(cmd string, args []string) string {
	takes := map[string]bool{}
	for _, f := range strings.Fields(valueFlags[cmd]) {
		takes[f] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return a
		}
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takes[name] {
			i++
		}
	}
	return ""
}

// runc replaces this process with runc, given the same arguments: the
// container is not a Mote image's.
func runc() error {
	bin := os.Getenv("MOTE_OCI_RUNC")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("runc"); err != nil {
			return fmt.Errorf("not a Mote image, and there is no runc to hand it to: %w", err)
		}
	}
	return syscall.Exec(bin, append([]string{"runc"}, os.Args[1:]...), os.Environ())
}

func (g *global) command(cmd string, args []string) error {
	rt := &ociruntime.Runtime{Root: g.root}
	switch cmd {
	case "create":
		return g.create(rt, args)
	case "features":
		return printJSON(featureList())
	case "list":
		return g.list(rt, args)
	case "spec":
		return runc()
	}
	id := containerID(cmd, args)
	if id == "" {
		return fmt.Errorf("want a container ID")
	}
	if !rt.Owns(id) {
		return runc()
	}
	c, err := rt.Load(id)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch cmd {
	case "start":
		return c.Start()
	case "state":
		return printJSON(c.State())
	case "kill":
		all := fs.Bool("all", false, "")
		fs.BoolVar(all, "a", false, "")
		if err := fs.Parse(args); err != nil {
			return err
		}
		sig := "SIGTERM"
		if fs.NArg() > 1 {
			sig = fs.Arg(1)
		}
		s, err := parseSignal(sig)
		if err != nil {
			return err
		}
		return c.Signal(s, *all)
	case "delete":
		force := fs.Bool("force", false, "")
		fs.BoolVar(force, "f", false, "")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return c.Delete(*force)
	case "ps":
		format := fs.String("format", "table", "")
		fs.StringVar(format, "f", "table", "")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *format == "json" {
			return printJSON(c.Pids())
		}
		fmt.Println("PID")
		for _, p := range c.Pids() {
			fmt.Println(p)
		}
		return nil
	case "exec":
		return errors.New("a Mote container is a unikernel: it runs one program and nothing can be executed in it (no shell, no processes); read its console with crictl logs or podman logs")
	case "update":
		return errors.New("a unikernel's memory and CPUs are fixed when it starts: recreate the container to change them")
	case "pause", "resume", "checkpoint", "restore", "events":
		return fmt.Errorf("%s is not supported for Mote containers (docs/kubernetes.md)", cmd)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func (g *global) create(rt *ociruntime.Runtime, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o ociruntime.CreateOptions
	fs.StringVar(&o.Bundle, "bundle", ".", "")
	fs.StringVar(&o.Bundle, "b", ".", "")
	fs.StringVar(&o.PidFile, "pid-file", "", "")
	fs.StringVar(&o.ConsoleSocket, "console-socket", "", "")
	fs.Bool("no-pivot", false, "")
	fs.Bool("no-new-keyring", false, "")
	fs.Int("preserve-fds", 0, "")
	fs.String("pidfd-socket", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one container ID")
	}
	id := fs.Arg(0)
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return err
	}
	o.Bundle = bundle
	s, err := ociruntime.LoadSpec(bundle)
	if err != nil {
		return err
	}
	o.HasKVM = kvmUsable()
	plan, err := ociruntime.NewPlan(bundle, s, o.HasKVM)
	if errors.Is(err, ociruntime.ErrNotMote) {
		return runc()
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if rt.Mote, err = moteCommand(); err != nil {
		return err
	}
	o.Stdio = [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	if len(plan.Ignored) > 0 {
		g.logger.Info("not honoured for a unikernel: "+strings.Join(plan.Ignored, ", "), "id", id)
	}
	g.logger.Info("a Mote unikernel", "id", id, "target", plan.Target, "memory", plan.Memory, "cpus", plan.CPUs)
	return rt.Create(id, s, plan, o)
}

// list prints this runtime's containers and runc's, as runc list does.
func (g *global) list(rt *ociruntime.Runtime, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "table", "")
	fs.StringVar(format, "f", "table", "")
	quiet := fs.Bool("quiet", false, "")
	fs.BoolVar(quiet, "q", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var states []any
	for _, c := range rt.List() {
		states = append(states, c.State())
	}
	if bin := os.Getenv("MOTE_OCI_RUNC"); bin != "" || lookRunc() {
		if bin == "" {
			bin = "runc"
		}
		out, err := exec.Command(bin, "--root", g.root, "list", "--format", "json").Output()
		var theirs []json.RawMessage
		if err == nil && json.Unmarshal(out, &theirs) == nil {
			for _, t := range theirs {
				states = append(states, t)
			}
		}
	}
	if *format == "json" {
		return printJSON(states)
	}
	for _, s := range states {
		b, _ := json.Marshal(s)
		var st specs.State
		json.Unmarshal(b, &st)
		if *quiet {
			fmt.Println(st.ID)
		} else {
			fmt.Printf("%s\t%d\t%s\t%s\n", st.ID, st.Pid, st.Status, st.Bundle)
		}
	}
	return nil
}

func lookRunc() bool { _, err := exec.LookPath("runc"); return err == nil }

// moteCommand finds mote: MOTE_OCI_MOTE, else beside mote-oci (go install
// puts both in one directory), else on $PATH.
func moteCommand() (string, error) {
	if m := os.Getenv("MOTE_OCI_MOTE"); m != "" {
		return m, nil
	}
	if self, err := os.Executable(); err == nil {
		m := filepath.Join(filepath.Dir(self), "mote")
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
			return m, nil
		}
	}
	m, err := exec.LookPath("mote")
	if err != nil {
		return "", errors.New("no mote command beside mote-oci or on $PATH (go install ./cmd/... installs both; or set MOTE_OCI_MOTE)")
	}
	return filepath.Abs(m)
}

// kvmUsable reports whether this process can open /dev/kvm.
func kvmUsable() bool {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// parseSignal reads a signal as runc kill takes it: 15, TERM or SIGTERM.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// featureList is what mote-oci features prints, for Mote containers.
func featureList() *features.Features {
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{},
		MountOptions:  []string{"bind", "rbind", "ro", "rw"},
		Annotations: map[string]string{
			ociimage.AnnotationUnikernel: "a Mote image's unikernel path (" + ociimage.UnikernelPath + ")",
			ociruntime.AnnotationTarget:  "hvt or spt",
		},
		Linux: &features.Linux{Namespaces: []string{string(specs.NetworkNamespace)}},
	}
}

func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}
