package nestedkvm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/moteos/mote/bench/microvm"
)

// Config is one command to run in the virtual machine.
type Config struct {
	// Files are copied into the machine's /files, by name, from the host
	// paths given; Dirs are subdirectories of /files to make first.
	Files map[string]string
	Dirs  []string
	// Args is the command (a path in the machine, such as
	// /files/hvt.test) and its arguments; Env is added to a minimal
	// environment (PATH, TMPDIR, HOME).
	Args []string
	Env  []string
	// Dir is the command's working directory in the machine ("": /files).
	Dir string
	// MemoryMiB and CPUs size the machine (defaults 4096 and 2).
	MemoryMiB, CPUs int
	// WorkDir holds the kernel, runner and initramfs made for the run.
	WorkDir string
}

// Available says why nested KVM cannot run here, or returns nil: it needs
// qemu-system-x86_64 and Debian's kernel with its kvm_amd module
// (scripts/install-nestedkvm installs both).
func Available() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("nestedkvm: needs an x86-64 host, not %s", runtime.GOARCH)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return errors.New("nestedkvm: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
	}
	_, mods, err := microvm.DefaultKernel()
	if err != nil {
		return fmt.Errorf("nestedkvm: %w", err)
	}
	if _, err := microvm.ResolveModules(mods, []string{"kvm_amd"}); err != nil {
		return fmt.Errorf("nestedkvm: the kernel has no kvm_amd module: %w", err)
	}
	return nil
}

var exitLine = regexp.MustCompile(`^nestedkvm: exit (\d+)\s*$`)

// Run boots the machine, runs cfg's command in it, copies the console to
// out (the command's output and any kernel messages), and returns the
// command's exit status. An error means the machine itself failed (it did
// not boot, or stopped before the command ended).
func Run(ctx context.Context, cfg Config, out io.Writer) (int, error) {
	if err := Available(); err != nil {
		return 0, err
	}
	if cfg.WorkDir == "" {
		return 0, errors.New("nestedkvm: Config.WorkDir is empty")
	}
	bz, _, err := microvm.DefaultKernel()
	if err != nil {
		return 0, err
	}
	vmlinux := filepath.Join(cfg.WorkDir, "vmlinux")
	if err := microvm.Kernel(bz, vmlinux); err != nil {
		return 0, err
	}
	runner := filepath.Join(cfg.WorkDir, "runner")
	if err := buildRunner(runner); err != nil {
		return 0, err
	}
	dir := cfg.Dir
	if dir == "" {
		dir = "/files"
	}
	plan, err := json.Marshal(struct {
		Args, Env []string
		Dir       string
	}{cfg.Args, cfg.Env, dir})
	if err != nil {
		return 0, err
	}
	planPath := filepath.Join(cfg.WorkDir, "run.json")
	if err := os.WriteFile(planPath, plan, 0o644); err != nil {
		return 0, err
	}
	files := map[string]string{"run.json": planPath}
	dirs := []string{"files"}
	for _, d := range cfg.Dirs {
		dirs = append(dirs, "files/"+d)
	}
	for name, src := range cfg.Files {
		files["files/"+name] = src
	}
	initrd := filepath.Join(cfg.WorkDir, "initrd")
	ic := microvm.InitramfsConfig{App: runner, Modules: []string{"kvm_amd"}, NoGzip: true, Files: files, Dirs: dirs}
	if err := ic.Write(initrd); err != nil {
		return 0, err
	}
	mem := cfg.MemoryMiB
	if mem == 0 {
		mem = 4096
	}
	cpus := cfg.CPUs
	if cpus == 0 {
		cpus = 2
	}
	qemu := microvm.Command(microvm.Config{Kernel: vmlinux, Initrd: initrd, MemoryMiB: mem, CPUs: cpus})
	cmd := exec.CommandContext(ctx, qemu.Path, qemu.Args[1:]...)
	// QEMU dies with the test: one left behind when go test's own timeout
	// ended the test binary ran on, a whole core, for over an hour.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("nestedkvm: starting QEMU: %w", err)
	}
	status := -1
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if m := exitLine.FindStringSubmatch(line); m != nil {
				status, _ = strconv.Atoi(m[1])
			}
			fmt.Fprintln(out, line)
		}
		io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	pw.Close()
	<-scanned
	if status < 0 {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("nestedkvm: the machine did not finish in time: %w", ctx.Err())
		}
		return 0, fmt.Errorf("nestedkvm: the machine stopped before the command ended (QEMU: %v)", werr)
	}
	return status, nil
}

// buildRunner builds ./runner, statically, to out.
func buildRunner(out string) error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("nestedkvm: cannot find the runner's source")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./runner")
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nestedkvm: building the runner: %v\n%s", err, b)
	}
	return nil
}
