package main

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// fileTest reads and writes the files a service expects, under root (a
// read-only mount) and rw (a writable one), and prints what it found;
// it returns the exit status.
func fileTest(root, rw string) int {
	status := 0
	check := func(what string, err error) {
		if err != nil {
			fmt.Printf("files: %s: %v\n", what, err)
			status = 1
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "config.yaml"))
	check("read config", err)
	fmt.Printf("files: config %q\n", b)
	// A read-only private mapping of a file, as bbolt maps its database.
	if f, err := os.Open(filepath.Join(root, "config.yaml")); err == nil {
		m, err := syscall.Mmap(int(f.Fd()), 0, len(b), syscall.PROT_READ, syscall.MAP_PRIVATE)
		fmt.Printf("files: mmap %q %v\n", m, err)
		if err == nil {
			syscall.Munmap(m)
		}
		f.Close()
	}
	var walked []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, strings.TrimPrefix(p, root))
		return nil
	})
	check("walk", err)
	fmt.Printf("files: walk %s\n", strings.Join(walked, " "))
	_, err = os.ReadFile(filepath.Join(root, "escape"))
	fmt.Printf("files: escape %v\n", err)
	err = os.WriteFile(filepath.Join(root, "new"), []byte("x"), 0o644)
	fmt.Printf("files: write to read-only %v\n", err)
	f, err := os.CreateTemp(rw, "out-*.txt")
	check("create temp", err)
	if err == nil {
		fmt.Fprintf(f, "written in the unikernel")
		f.Close()
		b, err := os.ReadFile(f.Name())
		fmt.Printf("files: temp %q %v\n", b, err)
	}
	// What testing's TempDir does, and a file's life in it.
	dir, err := os.MkdirTemp("", "work-")
	check("mkdir temp", err)
	if err == nil {
		p := filepath.Join(dir, "a")
		check("write", os.WriteFile(p, []byte("0123456789"), 0o600))
		check("truncate", os.Truncate(p, 4))
		check("chmod", os.Chmod(p, 0o644))
		check("rename", os.Rename(p, filepath.Join(dir, "b")))
		b, err := os.ReadFile(filepath.Join(dir, "b"))
		check("read renamed", err)
		check("mkdir", os.Mkdir(filepath.Join(dir, "sub"), 0o755))
		check("symlink", os.Symlink("b", filepath.Join(dir, "link")))
		check("link", os.Link(filepath.Join(dir, "b"), filepath.Join(dir, "hard")))
		when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		check("chtimes", os.Chtimes(filepath.Join(dir, "b"), when, when))
		lb, err := os.ReadFile(filepath.Join(dir, "link"))
		check("read through link", err)
		st, err := os.Stat(filepath.Join(dir, "hard"))
		check("stat hard link", err)
		if err == nil {
			fmt.Printf("files: links %q %v\n", lb, st.ModTime().Equal(when))
		}
		check("remove all", os.RemoveAll(dir))
		_, err = os.Stat(dir)
		fmt.Printf("files: tmp %s %q removed %v\n", filepath.Dir(dir), b, os.IsNotExist(err))
	}
	hosts, err := os.ReadFile("/etc/hosts")
	check("/etc/hosts", err)
	fmt.Printf("files: hosts has localhost %v\n", strings.Contains(string(hosts), "localhost"))
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), "localhost")
	fmt.Printf("files: localhost %v %v\n", addrs, err)
	wd, err := os.Getwd()
	fmt.Printf("files: cwd %s %v\n", wd, err)
	h, err := os.Hostname()
	fmt.Printf("files: hostname %s %v\n", h, err)
	exe, err := os.Executable()
	fmt.Printf("files: exe %s %v\n", exe, err)
	u, err := user.Current()
	if err == nil {
		fmt.Printf("files: user %s %s\n", u.Username, u.Uid)
		// Programs keep state under their home (caddy: ~/.local/share).
		home, err := os.UserHomeDir()
		if err == nil {
			err = os.MkdirAll(filepath.Join(home, ".local", "share", "app"), 0o755)
		}
		fmt.Printf("files: home %s %s %v\n", home, u.HomeDir, err)
	} else {
		fmt.Printf("files: user %v\n", err)
	}
	return status
}
