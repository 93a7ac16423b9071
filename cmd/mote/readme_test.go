package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
