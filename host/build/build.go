package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moteos/mote/host/inject"
)

// Targets are the targets mote builds for.
var Targets = []string{"unix", "hvt", "spt"}

// Options describe one build.
type Options struct {
	Target  string    // unix, hvt or spt
	Package string    // import path or directory ("" means ".")
	Output  string    // file to write ("" means <package base>.<target>)
	Dir     string    // directory to build from ("" means the current one)
	Stderr  io.Writer // Go's output and progress (nil: discarded)
	// Progress after this long prints a line saying the build goes on
	// (0: 2 s).
	Progress time.Duration
}

// Error is a failed build; Output is what the Go toolchain printed.
type Error struct {
	Package string
	Output  string
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("build %s: %v", e.Package, e.Err)
}

// CheckTarget returns an error naming the known targets if t is not one.
func CheckTarget(t string) error {
	for _, k := range Targets {
		if t == k {
			return nil
		}
	}
	return fmt.Errorf("unknown target %q (targets: %s)", t, strings.Join(Targets, ", "))
}

// Env returns the environment additions for building for target.
func Env(target string) []string {
	if target == "unix" {
		return nil
	}
	return []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1"}
}

// Name is the file name, without the target's extension, that a build of
// pkg gets by default, as go build names its output: the last element of
// the package's directory (relative patterns such as ".", "..", "./cmd/x"
// are taken from dir, or the working directory) or of its import path
// (without an @version or a major-version suffix). "main" when there is
// none (the root directory).
func Name(pkg, dir string) string {
	p, _, _ := strings.Cut(pkg, "@")
	if p == "." || p == ".." || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") || filepath.IsAbs(p) {
		if !filepath.IsAbs(p) {
			if dir == "" {
				dir, _ = os.Getwd()
			}
			p = filepath.Join(dir, p)
		}
		p = filepath.Clean(p)
	}
	p = strings.TrimSuffix(filepath.ToSlash(p), "/...")
	b := path.Base(p)
	if isMajorVersion(b) && path.Dir(p) != "." {
		b = path.Base(path.Dir(p)) // example.com/tool/v2 is "tool", as go build names it
	}
	if b == "." || b == "/" || b == ".." || b == "" {
		return "main"
	}
	return b
}

// isMajorVersion reports whether elem is a module path's major-version
// suffix (v2, v3, ...).
func isMajorVersion(elem string) bool {
	if len(elem) < 2 || elem[0] != 'v' || elem[1] == '0' || elem == "v1" {
		return false
	}
	for _, c := range elem[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CacheDir is where builds keep what they generate: $MOTE_CACHE, or
// mote under the user's cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("MOTE_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for mote's build files (set MOTE_CACHE): %w", err)
	}
	return filepath.Join(d, "mote"), nil
}

// Build builds and returns the path of the artifact.
func Build(ctx context.Context, opt Options) (string, error) {
	if err := CheckTarget(opt.Target); err != nil {
		return "", err
	}
	pkg := opt.Package
	if pkg == "" {
		pkg = "."
	}
	stderr := opt.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	out := opt.Output
	if out == "" {
		out = Name(pkg, opt.Dir) + "." + opt.Target
	}
	if !filepath.IsAbs(out) {
		base := opt.Dir
		if base == "" {
			base, _ = os.Getwd()
		}
		out = filepath.Join(base, out)
	}
	env := append(os.Environ(), Env(opt.Target)...)
	args := []string{"build", "-trimpath", "-o", out}
	dir, target := opt.Dir, pkg
	var cache string
	if opt.Target != "unix" || remote(pkg) {
		var err error
		if cache, err = CacheDir(); err != nil {
			return "", &Error{Package: pkg, Err: err}
		}
	}
	if remote(pkg) {
		// pkg@version: built from a module of mote's that requires it.
		var got strings.Builder
		d, p, err := remoteModule(ctx, pkg, env, cache, &got)
		if err != nil {
			io.WriteString(stderr, got.String())
			return "", &Error{Package: pkg, Output: got.String(), Err: err}
		}
		dir, target = d, p
	}
	if opt.Target != "unix" {
		// The program's own net package, on the unikernel's stack.
		plan, err := inject.Prepare(ctx, target, dir, env, cache)
		if err != nil {
			return "", &Error{Package: pkg, Err: err}
		}
		args = append(args, plan.Flags...)
	}
	args = append(args, target)
	cmd := exec.CommandContext(ctx, "go", args...)
	// Cancelled, the go command is interrupted, as Ctrl-C would, so that
	// it stops its compilers and cleans up, and killed only if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = dir
	cmd.Env = env
	var output strings.Builder
	cmd.Stdout = &output
	cmd.Stderr = &output

	progress := opt.Progress
	if progress == 0 {
		progress = 2 * time.Second
	}
	start := time.Now()
	t := time.AfterFunc(progress, func() {
		fmt.Fprintf(stderr, "mote: building %s for %s (the first build of a package compiles its dependencies)…\n", pkg, opt.Target)
	})
	err := cmd.Run()
	t.Stop()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", &Error{Package: pkg, Err: fmt.Errorf("running the Go toolchain: %w", err)}
		}
		io.WriteString(stderr, output.String())
		return "", &Error{Package: pkg, Output: output.String(), Err: errors.New("the Go toolchain failed (its output is above)")}
	}
	if time.Since(start) > progress {
		fmt.Fprintf(stderr, "mote: built %s in %v\n", out, time.Since(start).Round(100*time.Millisecond))
	}
	return out, nil
}
