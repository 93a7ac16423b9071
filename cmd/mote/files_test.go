package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnmodifiedFiles runs testdata/unmodified's file checks in a
// unikernel with a read-only and a writable mount (-v), -w and
// --hostname: reads, a directory walk, os.CreateTemp, /tmp (MkdirTemp,
// truncate, chmod, rename, RemoveAll), /etc/hosts and the
// name localhost, the working directory, the host name, the user; a
// symlink out of the mount and a write to the read-only one are refused.
func TestUnmodifiedFiles(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/unmodified")); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	data, rw, outside := filepath.Join(root, "data"), filepath.Join(root, "rw"), filepath.Join(root, "outside")
	for _, d := range []string{filepath.Join(data, "sub"), rw, outside} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(data, "config.yaml"), []byte("port: 1\n"), 0o644)
	os.WriteFile(filepath.Join(data, "sub", "a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret\n"), 0o644)
	os.Symlink("../outside/secret", filepath.Join(data, "escape"))

	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "unmodified."+target)
			if o := moteIn(t, src, nil, "build", "-t", target, "-o", image, "."); o.status != 0 {
				t.Fatalf("mote build: %d\n%s%s", o.status, o.stdout, o.stderr)
			}
			o := mote(t, "run", "-t", target, "--strict", "-v", data+":/srv:ro", "-v", rw+":/var/out",
				"--hostname", "box", "-w", "/srv", image, "--", "-files", "/srv,/var/out")
			for _, want := range []string{
				`files: config "port: 1\n"`,
				`files: mmap "port: 1\n" <nil>`,
				"files: walk  /config.yaml /escape /sub /sub/a.txt",
				"files: escape open /srv/escape: no such file or directory", // ../outside, in the guest, is not there
				"files: write to read-only open /srv/new: read-only file system",
				`files: temp "written in the unikernel" <nil>`,
				"files: hosts has localhost true",
				"files: localhost [127.0.0.1 ::1] <nil>",
				"files: cwd /srv <nil>",
				"files: hostname box <nil>",
				"files: user ",
				"files: home /tmp /tmp <nil>",
				"files: exe /unmodified." + target + " <nil>",
				`files: tmp /tmp "0123" removed true`,
				`files: links "0123" true`,
			} {
				if o.status != 0 || !strings.Contains(o.stdout, want) {
					t.Fatalf("status %d, no %q in\n%s%s", o.status, want, o.stdout, o.stderr)
				}
			}
			if ents, _ := os.ReadDir(rw); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "out-") {
				t.Errorf("the writable mount holds %v", ents)
			}
			os.RemoveAll(rw)
			os.MkdirAll(rw, 0o755)
		})
	}
	t.Run("image source", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "data.img")
		tree := t.TempDir() // data without its link: images hold files and directories
		os.CopyFS(tree, os.DirFS(filepath.Join(data)))
		os.Remove(filepath.Join(tree, "escape"))
		if o := mote(t, "mkimage", "-o", img, tree); o.status != 0 {
			t.Fatalf("mkimage: %d %s", o.status, o.stderr)
		}
		image := filepath.Join(t.TempDir(), "unmodified.spt")
		if o := moteIn(t, src, nil, "build", "-t", "spt", "-o", image, "."); o.status != 0 {
			t.Fatalf("mote build: %d\n%s", o.status, o.stderr)
		}
		o := mote(t, "run", "-t", "spt", "--strict", "-v", img+":/srv", "-w", "/srv", image, "--", "-files", "/srv,/tmp")
		for _, want := range []string{`files: config "port: 1\n"`, "files: walk  /config.yaml /sub /sub/a.txt",
			"files: write to read-only open /srv/new: read-only file system"} {
			if o.status != 0 || !strings.Contains(o.stdout, want) {
				t.Fatalf("status %d, no %q in\n%s%s", o.status, want, o.stdout, o.stderr)
			}
		}
		if o := mote(t, "run", "-t", "spt", "-v", img+":/srv:rw", image); o.status != 125 || !strings.Contains(o.stderr, "always read-only") {
			t.Errorf(":rw image: status %d, %q", o.status, o.stderr)
		}
		if o := mote(t, "run", "-t", "spt", "-v", "/etc/hostname:/srv", image); o.status != 125 || !strings.Contains(o.stderr, "-v /etc/hostname:/srv") {
			t.Errorf("a file that is no image: status %d, %q", o.status, o.stderr)
		}
	})
	t.Run("missing source", func(t *testing.T) {
		o := mote(t, "run", "-t", "spt", "-v", "/nonexistent/dir:/data", "./examples/hello")
		if o.status != 125 || !strings.Contains(o.stderr, "/nonexistent/dir") {
			t.Fatalf("status %d\n%s", o.status, o.stderr)
		}
	})
}
