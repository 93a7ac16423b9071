package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeQuickStart runs the README's quick-start program as the README
// gives it, in a module of its own that never heard of Mote, with the
// README's command (a free port instead of 8080), and asks it over HTTP.
func TestReadmeQuickStart(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Quick start\n.*?```go\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no Go block under Quick start")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/quickstart\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), m[1], 0o644)
	if !strings.Contains(string(b), "mote run -t hvt --net user -p 8080:8080 .") {
		t.Fatal("the README's command changed: update this test")
	}
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s := startIn(t, dir, moteBin, "run", "-t", target, "--strict", "--net", "user", "-p", addr+":8080", ".")
			var body []byte
			s.waitFor(t, addr, func() error {
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err = io.ReadAll(resp.Body)
				return err
			})
			if string(body) != "hello from mote\n" {
				t.Fatalf("GET /: %q", body)
			}
		})
	}
}

// TestReadmeInstances runs the README's background commands as written
// (a free port instead of 8080, and the state in a directory of the
// test's), on the quick-start program: run -d prints the name, ps lists
// it running, logs -f follows until stop ends it, rm removes it.
func TestReadmeInstances(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	quick := regexp.MustCompile("(?s)## Quick start\n.*?```go\n(.*?)```").FindSubmatch(b)
	block := regexp.MustCompile("(?s)In the background, as an instance.*?\n\n((?:    mote [^\n]*\n)+)").FindSubmatch(b)
	if quick == nil || block == nil {
		t.Fatal("README.md has no quick-start program or no background commands")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/quickstart\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), quick[1], 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	env := stateDir(t)
	t.Setenv("MOTE_STATE_DIR", strings.TrimPrefix(env[0], "MOTE_STATE_DIR=")) // for logs -f, started below
	var follow *server
	for _, line := range strings.Split(strings.TrimRight(string(block[1]), "\n"), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, c := range strings.Split(line, "&&") {
			args := strings.Fields(strings.ReplaceAll(c, "8080:8080", addr+":8080"))
			if len(args) == 0 || args[0] != "mote" {
				t.Fatalf("not a mote command: %q", c)
			}
			if len(args) > 2 && args[1] == "logs" && args[2] == "-f" {
				follow = startIn(t, dir, moteBin, args[1:]...)
				continue
			}
			got := moteIn(t, dir, env, args[1:]...)
			if got.status != 0 {
				t.Fatalf("%s: status %d\n%s", c, got.status, got.stderr)
			}
			switch args[1] {
			case "run":
				if got.stdout != "web\n" {
					t.Errorf("run -d printed %q", got.stdout)
				}
				waitFor(t, "the service", func() bool {
					resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/")
					if err == nil {
						resp.Body.Close()
					}
					return err == nil
				})
			case "ps":
				if !strings.Contains(got.stdout, "web") || !strings.Contains(got.stdout, "running") {
					t.Errorf("ps:\n%s", got.stdout)
				}
			}
		}
	}
	if follow == nil {
		t.Fatal("no logs -f among the commands")
	}
	select {
	case <-follow.done:
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end with the instance")
	}
	if got := moteIn(t, dir, env, "ps", "-a"); strings.Contains(got.stdout, "web") {
		t.Errorf("after rm:\n%s", got.stdout)
	}
}

// TestDocTAP runs docs/limits.md's TAP set-up as written (the namespace
// named for this test), with spt, and asks the guest over the TAP with
// curl.
func TestDocTAP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root to create a network namespace and a TAP device")
	}
	b, err := os.ReadFile("../../docs/limits.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A TAP interface in a network namespace\n.*?\n\n((?:    [^\n]*\n)+)").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/limits.md has no TAP commands")
	}
	ns := fmt.Sprintf("mote-doc-%d", os.Getpid())
	defer exec.Command("ip", "netns", "del", ns).Run()
	var served *server
	for _, line := range strings.Split(strings.TrimRight(string(m[1]), "\n"), "\n") {
		args := strings.Fields(strings.ReplaceAll(line, "mote-demo", ns))
		for i, a := range args {
			if a == "mote" {
				args[i] = moteBin
			}
		}
		switch {
		case slices.Contains(args, moteBin):
			served = startCmd(t, args[0], args[1:]...)
		case slices.Contains(args, "curl"):
			args = append(args[:len(args)-1], "-sS", "--max-time", "5", args[len(args)-1])
			var out []byte
			waitFor(t, "the guest over the TAP", func() bool {
				out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
				return err == nil
			})
			if !strings.Contains(string(out), `"target":"spt"`) {
				t.Errorf("curl: %s", out)
			}
			syscall.Kill(served.cmd.Process.Pid, syscall.SIGTERM)
			<-served.done
		default:
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		}
	}
}
