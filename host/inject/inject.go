package inject

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	mote "github.com/moteos/mote"
)

// ModulePath is Mote's module path, which the injected import names.
const ModulePath = "github.com/moteos/mote"

// stdnetImport is the file added to the program's main package.
const stdnetImport = `// Added by mote build (host/inject): the standard library's net package
// on the unikernel's own TCP/IP stack.

package main

import _ "github.com/moteos/mote/guest/stdnet"
`

// Plan is what the go command needs to build an unmodified program for
// hvt or spt: extra flags (-overlay, and -modfile with -mod=mod when the
// program's module does not require Mote).
type Plan struct {
	Flags []string
}

// Prepare makes the plan for building pkg from dir with the go command
// in env, writing what it needs under cache (mote's cache directory).
func Prepare(ctx context.Context, pkg, dir string, env []string, cache string) (*Plan, error) {
	info, err := goList(ctx, dir, env, pkg)
	if err != nil {
		return nil, err
	}
	if info.Name != "main" {
		return nil, fmt.Errorf("%s is package %s, not a main package", pkg, info.Name)
	}
	key := sha256.New()
	fmt.Fprintf(key, "%s\x00%s\x00%s\x00", info.GOROOT, info.Dir, info.GoVersion)
	work := filepath.Join(cache, "inject", hex.EncodeToString(key.Sum(nil))[:16])
	replace, err := netOverlay(info.GOROOT, filepath.Join(work, "net"))
	if err != nil {
		return nil, err
	}
	if info.Module == nil || info.GOMOD == "" {
		return nil, fmt.Errorf("%s is not in a module (mote builds packages of a module: go mod init)", pkg)
	}
	// The overlay may not add files under the module cache: a main
	// package of a dependency (pkg@version) is built from a copy of its
	// module, which the build's go.mod copy points at.
	mainDir, modReplace := info.Dir, ""
	if !info.Module.Main {
		cp, err := moduleCopy(info.Module.Dir, filepath.Join(cache, "modcopy", hashOf(info.Module.Path+"@"+info.Module.Version)))
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(info.Module.Dir, info.Dir)
		if err != nil {
			return nil, err
		}
		mainDir = filepath.Join(cp, rel)
		modReplace = fmt.Sprintf("replace %s => %s\n", info.Module.Path, cp)
	}
	main := filepath.Join(work, "zz_mote_stdnet.go")
	if err := os.WriteFile(main, []byte(stdnetImport), 0o644); err != nil {
		return nil, err
	}
	replace[filepath.Join(mainDir, "zz_mote_stdnet.go")] = main
	ov, err := json.Marshal(struct{ Replace map[string]string }{replace})
	if err != nil {
		return nil, err
	}
	ovPath := filepath.Join(work, "overlay.json")
	if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
		return nil, err
	}
	plan := &Plan{Flags: []string{"-overlay", ovPath}}
	if modReplace == "" && (info.Module.Path == ModulePath || requiresMote(ctx, dir, env)) {
		return plan, nil
	}
	modfile, err := moduleWithMote(info.GOMOD, filepath.Join(work, "mod"), filepath.Join(cache, "src"), modReplace)
	if err != nil {
		return nil, err
	}
	plan.Flags = append(plan.Flags, "-modfile", modfile, "-mod=mod")
	return plan, nil
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// moduleCopy copies the module at src (in the module cache) to dst, once.
func moduleCopy(src, dst string) (string, error) {
	if _, err := os.Stat(filepath.Join(dst, "go.mod")); err == nil {
		return dst, nil
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return "", err
	}
	if err := os.CopyFS(tmp, os.DirFS(src)); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("copying module %s: %w", src, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "go.mod")); err != nil {
		// A module without go.mod (pre-modules) gets a minimal one.
		os.RemoveAll(tmp)
		return "", fmt.Errorf("module %s has no go.mod", src)
	}
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, nil
}

type listed struct {
	Name      string
	Dir       string
	GOROOT    string `json:"-"`
	GoVersion string `json:"-"`
	GOMOD     string `json:"-"` // the main module's go.mod
	Module    *struct {
		Path, Version, Dir string
		Main               bool
	}
}

// goList describes pkg as the go command sees it from dir.
func goList(ctx context.Context, dir string, env []string, pkg string) (*listed, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-json=Name,Dir,Module,Error", pkg)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	var info struct {
		listed
		Error *struct{ Err string }
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("go list %s: %w", pkg, err)
	}
	if info.Error != nil {
		return nil, errors.New(info.Error.Err)
	}
	f, err := goEnv(ctx, dir, env, "GOROOT", "GOVERSION", "GOMOD")
	if err != nil {
		return nil, err
	}
	info.GOROOT, info.GoVersion, info.GOMOD = f[0], f[1], f[2]
	if info.GOMOD == os.DevNull {
		info.GOMOD = ""
	}
	return &info.listed, nil
}

// goEnv asks the go command in env, from dir, for the variables keys, one
// value each.
func goEnv(ctx context.Context, dir string, env []string, keys ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"env"}, keys...)...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	vals := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(vals) != len(keys) {
		return nil, fmt.Errorf("go env %s: %q", strings.Join(keys, " "), out)
	}
	return vals, nil
}

// requiresMote reports whether the module at dir already requires Mote.
func requiresMote(ctx context.Context, dir string, env []string) bool {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", ModulePath)
	cmd.Dir, cmd.Env = dir, env
	return cmd.Run() == nil
}

// moduleWithMote writes, in dir, a copy of the go.mod at gomod (and its
// go.sum) that also requires Mote, replaced by Mote's own source written
// under src, with the extra directives given, and returns the copy's path for go build -modfile. The
// program's go.mod and go.sum are not touched.
func moduleWithMote(gomod, dir, src, extra string) (string, error) {
	srcDir, err := guestSource(src)
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	sum, _ := os.ReadFile(strings.TrimSuffix(gomod, ".mod") + ".sum")
	moteSum, err := fs.ReadFile(mote.GuestSource, "go.sum")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	mod = fmt.Appendf(mod, "\nrequire %s v0.0.0\n\nreplace %s => %s\n%s", ModulePath, ModulePath, srcDir, extra)
	modPath := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(modPath, mod, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), append(append(sum, '\n'), moteSum...), 0o644); err != nil {
		return "", err
	}
	return modPath, nil
}

// guestSource writes mote.GuestSource under root, in a directory named by
// its content, once, and returns that directory.
func guestSource(root string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(mote.GuestSource, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(mote.GuestSource, p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", err
		}
		if tmp, err = os.MkdirTemp(root, ".tmp-"); err != nil {
			return "", err
		}
	}
	if err := os.CopyFS(tmp, mote.GuestSource); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return dir, nil // another build wrote it first
		}
		return "", err
	}
	return dir, nil
}

// NetOverlay writes an overlay that holds only the net package's edits
// (with its loopback network for programs without guest/stdnet) for the
// toolchain in env, and returns its path: what go test needs to build a
// test binary whose sockets work in a unikernel on loopback (mote test).
func NetOverlay(ctx context.Context, dir string, env []string, cache string) (string, error) {
	f, err := goEnv(ctx, dir, env, "GOROOT", "GOVERSION")
	if err != nil {
		return "", err
	}
	work := filepath.Join(cache, "netoverlay", hashOf(f[0]+"\x00"+f[1]))
	replace, err := netOverlay(f[0], filepath.Join(work, "net"))
	if err != nil {
		return "", err
	}
	ov, err := json.Marshal(struct{ Replace map[string]string }{replace})
	if err != nil {
		return "", err
	}
	p := filepath.Join(work, "overlay.json")
	return p, os.WriteFile(p, ov, 0o644)
}
