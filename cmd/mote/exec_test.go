package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoTestExec runs testdata/gotestexec's tests with go test -exec
// 'mote exec': testdata/ is read in the guest, t.TempDir works, the
// package directory is read-only, and a failing test fails go test.
func TestGoTestExec(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/gotestexec")); err != nil {
		t.Fatal(err)
	}
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			run := func(extra ...string) (string, error) {
				args := append([]string{"test", "-count=1", "-v", "-exec", moteBin + " exec -t " + target + " --strict", "."}, extra...)
				cmd := exec.Command("go", args...)
				cmd.Dir = src
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := run()
			for _, want := range []string{"--- PASS: TestTestdata", "--- PASS: TestTempDir", "--- PASS: TestWriteTestdataRefused", "--- PASS: TestAllocatesAsTestsDo", "ok  \texample.com/gotestexec"} {
				if err != nil || !strings.Contains(out, want) {
					t.Fatalf("go test -exec: %v, no %q in\n%s", err, want, out)
				}
			}
			out, err = run("-args", "-fail")
			if err == nil || !strings.Contains(out, "asked to fail") {
				t.Fatalf("a failing test: %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(src, "testdata", "out.txt")); err == nil {
				t.Fatal("the guest wrote into the package directory")
			}
		})
	}
}
