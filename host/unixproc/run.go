package unixproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/moteos/mote/abi"
)

// Config describes one run.
type Config struct {
	Binary         string
	Args           []string
	Env            []string // added to the host environment
	Manifest       *abi.Manifest
	Stdout, Stderr io.Writer
}

// Run starts the program, forwards SIGINT, SIGTERM and SIGHUP to it, and
// returns its exit status (128+n for a death by signal n).
func Run(ctx context.Context, cfg Config) (int, error) {
	man := cfg.Manifest
	if man == nil {
		man = &abi.Manifest{Version: abi.Version, Target: abi.TargetUnix}
	}
	// Paths in the manifest are absolute, so the program may change
	// directory.
	for i := range man.Block {
		if p, err := filepath.Abs(man.Block[i].Path); err == nil {
			man.Block[i].Path = p
		}
	}
	for i := range man.FS {
		if p, err := filepath.Abs(man.FS[i].Path); err == nil {
			man.FS[i].Path = p
		}
	}
	js, err := man.Encode()
	if err != nil {
		return 1, err
	}
	cmd := exec.Command(cfg.Binary, cfg.Args...)
	cmd.Env = append(append(os.Environ(), cfg.Env...), abi.EnvManifest+"="+string(js))
	cmd.Stdin = os.Stdin
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	// The program does not outlive mote, even one killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", cfg.Binary, err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-ctx.Done():
				cmd.Process.Kill()
				return
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}
