package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// remote reports whether pkg names a package at a version, as go run
// pkg@version takes it (not a path in the file system).
func remote(pkg string) bool {
	p, v, ok := strings.Cut(pkg, "@")
	return ok && v != "" && p != "" && !strings.HasPrefix(p, ".") && !filepath.IsAbs(p)
}

// remoteModule makes, once per pkg@version under cache, a module that
// requires the module holding pkg at that version, and returns its
// directory and pkg's import path: the package is then built from there,
// as go run pkg@version builds it outside any module of the user's. As
// there, the package's own module's replace directives do not apply.
func remoteModule(ctx context.Context, pkg string, env []string, cache string, stderr *strings.Builder) (dir, path string, err error) {
	path, _, _ = strings.Cut(pkg, "@")
	sum := sha256.Sum256([]byte(pkg))
	dir = filepath.Join(cache, "remote", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
		return dir, path, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", "", err
	}
	mod := "// Written by mote for " + pkg + " (host/build/remote.go).\nmodule mote.local/remote\n"
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(mod), 0o644); err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "get", pkg)
	cmd.Dir, cmd.Env = tmp, env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", "", fmt.Errorf("go get %s: %v", pkg, err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", err
	}
	return dir, path, nil
}
