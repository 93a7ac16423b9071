package ociruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// InitArg is the hidden argument with which mote-oci starts itself as a
// container's init process (see Init).
const InitArg = "__mote-oci-init"

// Files in a container's state directory.
const (
	stateFile = "mote.json" // not runc's state.json: runc must not take it for its own
	fifoFile  = "exec.fifo" // the init process waits on it until start
)

// idRE is what runc takes as a container ID.
var idRE = regexp.MustCompile(`^[\w+.-]+$`)

// Runtime is a root directory of container state, as runc --root names one.
type Runtime struct {
	Root string
	Mote string // the mote command a container's init becomes
}

// Container is one container's state, kept in its directory.
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Pid         int               `json:"pid"`
	// StartTime is the init process's start (field 22 of /proc/PID/stat),
	// so that a PID used again is not taken for the container's.
	StartTime uint64   `json:"start_time"`
	Mote      string   `json:"mote"`
	Argv      []string `json:"argv"` // what the init process executes (Mote first)
	Plan      *Plan    `json:"plan"`
	Net       *PodNet  `json:"net,omitempty"`     // what init set up in the pod's namespace
	Cgroups   []string `json:"cgroups,omitempty"` // the cgroups create made
	Tmp       string   `json:"tmp"`               // mote's TMPDIR (the guest's /tmp is made in it)

	dir string
}

func (r *Runtime) dir(id string) (string, error) {
	if !idRE.MatchString(id) || len(id) > 1024 || id == "." || id == ".." {
		return "", fmt.Errorf("container ID %q: want letters, digits, and + - . _", id)
	}
	return filepath.Join(r.Root, id), nil
}

// Owns reports whether id is a container of this runtime (and not runc's).
func (r *Runtime) Owns(id string) bool {
	d, err := r.dir(id)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(d, stateFile))
	return err == nil
}

// Load reads a container's state.
func (r *Runtime) Load(id string) (*Container, error) {
	d, err := r.dir(id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %q does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	c := &Container{dir: d}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("container %s: state: %w", id, err)
	}
	return c, nil
}

func (c *Container) save() error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, stateFile), b)
}

// writeFileAtomic writes a file whole or not at all: a reader (the shim
// reading a pid file) never sees half of one.
func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// startTime reads a process's start time, in clock ticks since boot.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold anything: fields count
	// from after its last parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("bad /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, os.ErrProcessDone // exited, not yet reaped by the shim
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the container's init (or the mote it became)
// still runs.
func (c *Container) alive() bool {
	if c.Pid <= 0 {
		return false
	}
	st, err := startTime(c.Pid)
	return err == nil && st == c.StartTime
}

// Status is the container's state as the OCI runtime spec names it.
func (c *Container) Status() specs.ContainerState {
	switch {
	case c.Pid == 0:
		return specs.StateCreating
	case !c.alive():
		return specs.StateStopped
	}
	if _, err := os.Stat(filepath.Join(c.dir, fifoFile)); err == nil {
		return specs.StateCreated
	}
	return specs.StateRunning
}

// State is what runc state prints: the OCI state, with runc's rootfs and
// created fields that containerd's shim reads.
func (c *Container) State() any {
	st, pid := c.Status(), c.Pid
	if st == specs.StateStopped {
		pid = 0 // as runc says: the number may be another process's by now
	}
	return struct {
		specs.State
		Rootfs  string    `json:"rootfs"`
		Created time.Time `json:"created"`
	}{specs.State{Version: specs.Version, ID: c.ID, Status: st, Pid: pid, Bundle: c.Bundle, Annotations: c.Annotations}, c.Rootfs, c.Created}
}

// CreateOptions are runc create's.
type CreateOptions struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	HasKVM        bool
	Stdio         [3]*os.File // the container's, when it has no terminal
}

// syncMsg is what the init process tells create once set up.
type syncMsg struct {
	Error string  `json:"error,omitempty"`
	Net   *PodNet `json:"net,omitempty"`
}

// Create makes container id from a bundle whose Plan is plan, and leaves
// its init process waiting for Start. The init process is not create's
// to wait for: it is the caller's parent's (the shim is a subreaper).
func (r *Runtime) Create(id string, s *specs.Spec, plan *Plan, o CreateOptions) (err error) {
	d, err := r.dir(id)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.Root, 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(d, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("container with id %q already exists", id)
		}
		return err
	}
	c := &Container{ID: id, Bundle: o.Bundle, Created: time.Now().UTC(), Annotations: s.Annotations, Mote: r.Mote, Plan: plan, dir: d}
	c.Rootfs, _ = Rootfs(o.Bundle, s)
	var init *os.Process
	defer func() {
		if err != nil {
			if init != nil {
				init.Kill()
				init.Wait()
			}
			leaveCgroups(c.Cgroups)
			c.Net.Remove()
			removeTmp(c.Tmp)
			os.RemoveAll(d)
		}
	}()
	if c.Tmp, err = makeTmp(c.Rootfs); err != nil {
		return err
	}
	if err := unix.Mkfifo(filepath.Join(d, fifoFile), 0o600); err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	if err := c.save(); err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncR.Close()
	cmd := exec.Command(self, InitArg, d)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=" + c.Tmp}
	cmd.ExtraFiles = []*os.File{syncW}
	// A session of its own: the shim's process group and terminal
	// signals are not the container's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var master *os.File
	if plan.Terminal {
		if o.ConsoleSocket == "" {
			syncW.Close()
			return errors.New("the container has a terminal but no --console-socket was given")
		}
		m, slave, err := openPTY()
		if err != nil {
			syncW.Close()
			return err
		}
		master = m
		defer master.Close()
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdio[0], o.Stdio[1], o.Stdio[2]
	}
	err = cmd.Start()
	syncW.Close()
	if err != nil {
		return fmt.Errorf("starting init: %w", err)
	}
	init = cmd.Process
	if master != nil {
		if err := sendConsole(o.ConsoleSocket, master); err != nil {
			return err
		}
	}
	// Known at once, so that a delete after a create that was itself
	// killed can still end the init process.
	if c.StartTime, err = startTime(init.Pid); err != nil {
		return fmt.Errorf("the init process: %w", err)
	}
	c.Pid = init.Pid
	if err := c.save(); err != nil {
		return err
	}
	syncR.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, _ := io.ReadAll(io.LimitReader(syncR, 1<<20))
	var msg syncMsg
	if len(b) == 0 {
		return errors.New("the init process died, or did not answer in 30 s, while setting up")
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		return fmt.Errorf("the init process said %q", b)
	}
	c.Net = msg.Net
	if msg.Error != "" {
		return errors.New(msg.Error)
	}
	if plan.Cgroup != "" {
		c.Cgroups, err = joinCgroup(plan.Cgroup, init.Pid)
		if err != nil {
			return err
		}
	}
	if err := c.save(); err != nil {
		return err
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(c.Pid))); err != nil {
			return fmt.Errorf("pid file: %w", err)
		}
	}
	// The caller's parent (the shim, a subreaper) reaps it from here on;
	// released last, so that every failure above can still kill it.
	init.Release()
	return nil
}

// tmpName is mote's TMPDIR in the rootfs, out of the guest's sight.
const tmpName = ".mote-tmp"

// makeTmp makes mote's TMPDIR in the container's rootfs: the guest's
// writable /tmp goes there, in the container's writable layer on disk,
// which the container manager counts (a pod's ephemeral storage) and
// removes, rather than in the runtime's root on /run, a tmpfs every
// container shares. The image must not hold the name already (it might
// be a symbolic link to anywhere).
func makeTmp(rootfs string) (string, error) {
	dir, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(dir)
	if err := unix.Mkdirat(dir, tmpName, 0o700); err != nil {
		if err == unix.EEXIST {
			return "", fmt.Errorf("the image holds /%s, a name Mote keeps for itself", tmpName)
		}
		return "", &os.PathError{Op: "mkdir", Path: filepath.Join(rootfs, tmpName), Err: err}
	}
	return filepath.Join(rootfs, tmpName), nil
}

// removeTmp removes what makeTmp made and mote left there.
func removeTmp(tmp string) {
	if filepath.Base(tmp) == tmpName {
		os.RemoveAll(tmp)
	}
}

// Start lets a created container's init process become mote.
func (c *Container) Start() error {
	if st := c.Status(); st != specs.StateCreated {
		return fmt.Errorf("cannot start a container that is %s", st)
	}
	fifo := filepath.Join(c.dir, fifoFile)
	// Non-blocking, so that an init process that died is noticed rather
	// than waited for.
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	defer unix.Close(fd)
	var b [1]byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		n, err := unix.Read(fd, b[:])
		if n == 1 {
			break
		}
		if err != nil && err != unix.EAGAIN {
			return fmt.Errorf("exec fifo: %w", err)
		}
		if !c.alive() {
			return errors.New("the container's init process died before start")
		}
		if time.Now().After(deadline) {
			return errors.New("the container's init process did not answer start in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	return os.Remove(fifo)
}

// Signal sends sig to the container's process: mote, which passes
// SIGINT, SIGTERM and SIGHUP to the guest and ends it on SIGKILL; with
// all, to every process of the container (kill --all).
func (c *Container) Signal(sig unix.Signal, all bool) error {
	if !c.alive() {
		return errors.New("container not running")
	}
	if all {
		for _, p := range c.Pids()[1:] {
			unix.Kill(p, sig)
		}
	}
	return unix.Kill(c.Pid, sig)
}

// Delete removes a stopped or never started container (whose init
// process it kills, as runc does); force kills a running one first.
func (c *Container) Delete(force bool) error {
	if c.alive() {
		if !force && c.Status() != specs.StateCreated {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", c.ID, c.Status())
		}
		unix.Kill(c.Pid, unix.SIGKILL)
		for deadline := time.Now().Add(10 * time.Second); c.alive(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("container %s: process %d did not die of SIGKILL in 10 s", c.ID, c.Pid)
			}
		}
	}
	leaveCgroups(c.Cgroups)
	// A pod network that cannot be taken apart (its namespace broken)
	// must not make the container undeletable: the state goes, the error
	// is reported.
	nerr := c.Net.Remove()
	removeTmp(c.Tmp)
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	if nerr != nil {
		return fmt.Errorf("container %s deleted, but: %w", c.ID, nerr)
	}
	return nil
}

// Pids lists the container's processes: mote and its children (spt's
// guest).
func (c *Container) Pids() []int {
	if !c.alive() {
		return []int{}
	}
	pids := []int{c.Pid}
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
	}
	for i := 0; i < len(pids); i++ {
		for pid, pp := range parent {
			if pp == pids[i] {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// List is every container of this runtime.
func (r *Runtime) List() []*Container {
	ents, _ := os.ReadDir(r.Root)
	var cs []*Container
	for _, e := range ents {
		if c, err := r.Load(e.Name()); err == nil {
			cs = append(cs, c)
		}
	}
	return cs
}
