package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/instance"
)

// Instances: unikernels run in the background (mote run -d), each by a
// detached mote of its own (the runner), with no daemon; host/instance
// keeps their state. mote ps, logs, stop, rm and inspect read and act on
// that state.

// runnerArg makes mote the runner of the instance in the directory that
// follows.
const runnerArg = "mote-instance-runner"

const psHelp = `Lists instances started with mote run -d: name, image, target, state,
uptime, published ports, memory (resident, the runner and its guest) and
CPU time. Only running ones unless -a. Instances live under
MOTE_STATE_DIR (default /run/mote for root, else $XDG_RUNTIME_DIR/mote).

flags:
  -a    all instances, stopped ones too
  -q    names only
`

const logsHelp = `Shows an instance's console (its standard output and error). The log is
bounded: 8 MiB, then rotated once, so at most 16 MiB are kept.

flags:
  -f             follow: keep showing output until the instance ends
  --since WHEN   only output from WHEN on: a duration (10m) or an RFC 3339 time
  --timestamps   show each line's time
`

const stopHelp = `Stops instances: SIGTERM to the guest (through its runner), and after
-t seconds (default 10) the guest and its runner are killed. The guest
is not restarted by its policy.

flags:
  -t SECONDS    how long the guest may take to end
`

const rmHelp = `Removes stopped instances and their logs.

flags:
  -f    stop running ones first, at once
`

var (
	restartRE = regexp.MustCompile(`^on-failure(:([0-9]+))?$`)
	notInName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`) // what a default instance name leaves out of the image's
)

func parseRestart(s string) (instance.Restart, error) {
	if s == "no" {
		return instance.Restart{}, nil
	}
	m := restartRE.FindStringSubmatch(s)
	if m == nil {
		return instance.Restart{}, usagef("--restart %q: want no or on-failure[:N]", s)
	}
	n, _ := strconv.Atoi(m[2])
	return instance.Restart{OnFailure: true, Max: n}, nil
}

// runDetached creates the instance and starts its runner, a detached mote
// in a session of its own, then waits until the runner holds the
// instance, and prints its name. A package built for the run is kept in
// the instance's directory, for restarts.
func runDetached(o runOptions, policy instance.Restart, flags []string, what, image string, guestArgs []string, stdout, stderr io.Writer) (int, error) {
	name := o.name
	if name == "" {
		var b [3]byte
		rand.Read(b[:])
		base := notInName.ReplaceAllString(strings.TrimSuffix(filepath.Base(what), filepath.Ext(what)), "")
		if base == "" || base == "." || base[0] == '.' || base[0] == '-' {
			base = "mote"
		}
		name = fmt.Sprintf("%.50s-%s", base, hex.EncodeToString(b[:]))
	}
	if err := instance.CheckName(name); err != nil {
		return exitUsage, usageError{err.Error()}
	}
	ports := []string(o.publish)
	root := instance.DefaultRoot()
	in, err := instance.Create(root, instance.Spec{
		Name: name, Image: what, Target: o.target, Flags: flags, GuestArgs: guestArgs,
		Ports: ports, Memory: o.memory, Restart: policy, Created: time.Now(),
	})
	if errors.Is(err, instance.ErrExists) {
		if old, oerr := instance.Open(root, name); oerr == nil {
			err = fmt.Errorf("%w (%s): choose another --name, or remove it with mote rm %s", err, old.Status(), name)
		}
	}
	if err != nil {
		return exitError, err
	}
	fail := func(err error) (int, error) {
		os.RemoveAll(in.Dir)
		return exitError, err
	}
	if o.built {
		dst := filepath.Join(in.Dir, "image")
		if err := copyFile(image, dst); err != nil {
			return fail(err)
		}
		image = dst
	}
	if image, err = filepath.Abs(image); err != nil {
		return fail(err)
	}
	if err := in.SetImagePath(image); err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	runnerLog, err := os.OpenFile(filepath.Join(in.Dir, instance.RunnerLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	defer runnerLog.Close()
	cmd := exec.Command(self, runnerArg, in.Dir)
	cmd.Stdout, cmd.Stderr = runnerLog, runnerLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not the terminal's: Ctrl-C there is not for it
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			// Ended before it was seen running: what it said is in its
			// own log or the console's.
			var said bytes.Buffer
			b, _ := os.ReadFile(filepath.Join(in.Dir, instance.RunnerLog))
			said.Write(b)
			in.ReadLog(context.Background(), &said, instance.ReadOptions{})
			os.RemoveAll(in.Dir)
			return exitError, fmt.Errorf("instance %s ended at once (%v):\n%s", name, err, strings.TrimSpace(said.String()))
		case <-deadline:
			return exitError, fmt.Errorf("instance %s: its runner (pid %d) did not start within 30 s; see %s", name, cmd.Process.Pid, runnerLog.Name())
		case <-time.After(10 * time.Millisecond):
		}
		cur, err := instance.Open(root, name)
		if err == nil && cur.Live && cur.State.PID == cmd.Process.Pid {
			fmt.Fprintln(stdout, name)
			return 0, nil
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// runInstance is the runner: it runs the instance's guest with the
// console going to the instance's log, records each start and exit, and
// restarts a failing guest as the policy says, with backoff, unless mote
// stop asked for the end.
func runInstance(dir string) int {
	in, err := instance.OpenDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mote runner:", err)
		return exitError
	}
	var o runOptions
	fs := runFlags(&o, io.Discard)
	fs.BoolVar(&o.detach, "d", false, "")
	fs.StringVar(&o.name, "name", "", "")
	fs.StringVar(&o.restart, "restart", "no", "")
	if err := parse(fs, in.Spec.Flags); err != nil {
		fmt.Fprintln(os.Stderr, "mote runner:", err)
		return exitUsage
	}
	mem, err := o.check()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mote runner:", err)
		return exitUsage
	}
	o.built = in.Spec.ImagePath == filepath.Join(dir, "image")
	r, err := in.Run(instance.DefaultMaxLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mote runner:", err)
		return exitError
	}
	defer r.Close()
	// A stop between runs (during a backoff) ends the runner at once;
	// during a run the target passes the signal on to the guest.
	stopped := make(chan os.Signal, 1)
	signal.Notify(stopped, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	mx, err := startMetrics(o.metrics, in.Spec.Name, in.Spec.Image, o.target)
	if err != nil {
		fmt.Fprintf(r.Log, "mote: %v\n", err)
		r.Exited(exitUsage)
		return exitUsage
	}
	defer mx.close()
	o.onNIC = mx.onNIC()
	log := mx.counting(r.Log)
	backoff := 100 * time.Millisecond
	for {
		status, err := mx.run(func() (int, error) { return runTarget(o, in.Spec.ImagePath, mem, in.Spec.GuestArgs, log, log) })
		if err != nil {
			fmt.Fprintf(r.Log, "mote: %v\n", err)
			if status == 0 {
				status = exitError
			}
		}
		r.Exited(status)
		p := in.Spec.Restart
		if status == 0 || !p.OnFailure || r.StopAsked() || (p.Max > 0 && in.State.Restarts >= p.Max) {
			return status
		}
		select {
		case <-stopped:
			return status
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		fmt.Fprintf(r.Log, "mote: restarting after exit status %d (restart %d)\n", status, in.State.Restarts+1)
		r.Restarted()
	}
}

func runPs(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("ps", stderr)
	all := fs.Bool("a", false, "all")
	quiet := fs.Bool("q", false, "names only")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	list, err := instance.List(instance.DefaultRoot())
	if err != nil {
		return exitError, err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	if !*quiet {
		fmt.Fprintln(tw, "NAME\tIMAGE\tTARGET\tSTATE\tUPTIME\tPORTS\tMEMORY\tCPU")
	}
	for _, in := range list {
		if !*all && !in.Live {
			continue
		}
		if *quiet {
			fmt.Fprintln(tw, in.Spec.Name)
			continue
		}
		state, up, mem, cpu := in.Status(), "-", "-", "-"
		if in.State.Status != nil && !in.Live {
			state = fmt.Sprintf("%s (%d)", state, *in.State.Status)
		}
		if in.State.Restarts > 0 {
			state += fmt.Sprintf(", %d restarts", in.State.Restarts)
		}
		if in.Live {
			up = time.Since(in.State.Started).Round(time.Second).String()
			u := usageOf(in.State.PID)
			mem = fmt.Sprintf("%.1fMiB", float64(u.rss)/(1<<20))
			cpu = (time.Duration(u.ticks) * time.Second / 100).Round(10 * time.Millisecond).String()
		}
		ports := strings.Join(in.Spec.Ports, ",")
		if ports == "" {
			ports = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Spec.Name, in.Spec.Image, in.Spec.Target, state, up, ports, mem, cpu)
	}
	tw.Flush()
	return 0, nil
}

// treeUsage is what the host counts for a process and its descendants
// (the runner and, on spt, its guest): resident memory in bytes, CPU time
// in clock ticks, and bytes read and written by system calls.
type treeUsage struct{ rss, ticks, read, written uint64 }

// usageOf reads /proc for pid and, one walk, every descendant.
func usageOf(pid int) (u treeUsage) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u // gone meanwhile
	}
	// Fields after the command, which ends at the last ')'.
	if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 22 {
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		pages, _ := strconv.ParseUint(f[21], 10, 64)
		u.ticks, u.rss = ut+st, pages*uint64(os.Getpagesize())
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rchar":
				u.read = n
			case "wchar":
				u.written = n
			}
		}
	}
	for _, kid := range children(pid) {
		k := usageOf(kid)
		u.rss, u.ticks, u.read, u.written = u.rss+k.rss, u.ticks+k.ticks, u.read+k.read, u.written+k.written
	}
	return u
}

// children lists a process's children, from each of its threads.
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, k := range strings.Fields(string(kids)) {
			if kp, err := strconv.Atoi(k); err == nil {
				out = append(out, kp)
			}
		}
	}
	return out
}

func openInstance(name string) (*instance.Instance, error) {
	return instance.Open(instance.DefaultRoot(), name)
}

func runLogs(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("logs", stderr)
	follow := fs.Bool("f", false, "follow")
	since := fs.String("since", "", "a duration or an RFC 3339 time")
	stamps := fs.Bool("timestamps", false, "show times")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("want one instance")
	}
	o := instance.ReadOptions{Follow: *follow, Timestamps: *stamps}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			o.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, *since); err == nil {
			o.Since = t
		} else {
			return exitUsage, usagef("--since %q: want a duration (10m) or an RFC 3339 time", *since)
		}
	}
	in, err := openInstance(fs.Arg(0))
	if err != nil {
		return exitError, err
	}
	o.Done = func() bool {
		cur, err := openInstance(in.Spec.Name)
		return err != nil || !cur.Live
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	if err := in.ReadLog(ctx, stdout, o); err != nil {
		return exitError, err
	}
	return 0, nil
}

func runStop(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("stop", stderr)
	grace := fs.Int("t", 10, "seconds")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("want instances")
	}
	return eachInstance("stop", fs.Args(), stdout, stderr, func(in *instance.Instance) error {
		return stopInstance(in, time.Duration(*grace)*time.Second)
	}), nil
}

// eachInstance runs f on the named instances in turn, printing each name
// done and each failure; the status is 1 if any failed.
func eachInstance(cmd string, names []string, stdout, stderr io.Writer, f func(*instance.Instance) error) int {
	status := 0
	for _, name := range names {
		in, err := openInstance(name)
		if err == nil {
			err = f(in)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mote %s: %v\n", cmd, err)
			status = 1
			continue
		}
		fmt.Fprintln(stdout, name)
	}
	return status
}

// stopInstance asks the guest to end (SIGTERM through its runner, which
// passes it on) and waits grace for it; then the runner's whole session,
// the guest with it, is killed, and the state says so (a runner killed
// cannot).
func stopInstance(in *instance.Instance, grace time.Duration) error {
	if !in.Live {
		return nil // stopped already: as docker stop, not an error
	}
	if err := in.AskStop(); err != nil {
		return err
	}
	pid := in.State.PID
	live := func() bool {
		cur, err := instance.OpenDir(in.Dir)
		return err == nil && cur.Live
	}
	unix.Kill(pid, unix.SIGTERM)
	for end := time.Now().Add(grace); time.Now().Before(end) && live(); {
		time.Sleep(20 * time.Millisecond)
	}
	if !live() {
		return nil
	}
	unix.Kill(-pid, unix.SIGKILL) // its session: the runner made it, and the guest is in it
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && live(); {
		time.Sleep(20 * time.Millisecond)
	}
	if live() {
		return fmt.Errorf("instance %s: its runner (pid %d) survived SIGKILL", in.Spec.Name, pid)
	}
	return in.MarkKilled(137)
}

func runRm(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("rm", stderr)
	force := fs.Bool("f", false, "stop running ones first")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("want instances")
	}
	return eachInstance("rm", fs.Args(), stdout, stderr, func(in *instance.Instance) error {
		if *force {
			if err := stopInstance(in, 0); err != nil {
				return err
			}
		}
		return in.Remove()
	}), nil
}

// inspectInstance prints an instance's spec and state as JSON.
func inspectInstance(name string, stdout io.Writer) (int, error) {
	in, err := openInstance(name)
	if err != nil {
		return 1, err
	}
	b, _ := json.MarshalIndent(struct {
		Status string         `json:"status"`
		Dir    string         `json:"dir"`
		Spec   instance.Spec  `json:"spec"`
		State  instance.State `json:"state"`
	}{in.Status(), in.Dir, in.Spec, in.State}, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return 0, nil
}
