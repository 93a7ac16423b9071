package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMoteTest runs testdata/motetest's tests, which listen and dial
// (httptest, UDP, deadlines, a refused dial), with mote test: go test
// builds them with Mote's net overlay and they run in a unikernel on its
// loopback network.
func TestMoteTest(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/motetest")); err != nil {
		t.Fatal(err)
	}
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			cmd := exec.Command(moteBin, "test", "-t", target, "-count=1", "-v", ".")
			cmd.Dir = src
			out, err := cmd.CombinedOutput()
			for _, want := range []string{"--- PASS: TestHTTPTestServer", "--- PASS: TestUDPAndDeadlines", "--- PASS: TestRefused", "ok  \texample.com/motetest"} {
				if err != nil || !strings.Contains(string(out), want) {
					t.Fatalf("mote test: %v, no %q in\n%s", err, want, out)
				}
			}
		})
	}
}
