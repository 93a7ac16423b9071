package inject

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moteos/mote/abi"
)

// TestNetOverlayFitsToolchain makes the overlay from this toolchain's net
// package: every edit must find its place, once per inserted line.
func TestNetOverlayFitsToolchain(t *testing.T) {
	dir := t.TempDir()
	replace, err := netOverlay(runtime.GOROOT(), dir)
	if err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(runtime.GOROOT(), "src", "net", "mote_net.go")
	if replace[added] == "" {
		t.Fatalf("no mote_net.go in the overlay: %v", replace)
	}
	b, err := os.ReadFile(replace[added])
	if err != nil || strings.Contains(string(b), "go:build ignore") || !strings.Contains(string(b), "package net") {
		t.Fatalf("mote_net.go: %v\n%.200s", err, b)
	}
	for _, e := range netEdits {
		b, err := os.ReadFile(replace[filepath.Join(runtime.GOROOT(), "src", "net", e.file)])
		if err != nil {
			t.Fatal(err)
		}
		if e.replace != "" {
			if strings.Contains(string(b), e.at) {
				t.Errorf("%s: %q left", e.file, e.at)
			}
			continue
		}
		if !strings.Contains(string(b), e.at+"\n"+strings.TrimRight(e.insert, "\n")) && !strings.Contains(string(b), e.at+"\n\t"+e.insert) {
			t.Errorf("%s: %q not inserted after %q", e.file, e.insert, e.at)
		}
	}
}

// TestEditRefusesStrangeSource: a net package without what an edit expects
// is an error naming it, not a half-made overlay.
func TestEditRefusesStrangeSource(t *testing.T) {
	_, err := edit{file: "x.go", at: "func (fd *netFD) Read(p []byte) (n int, err error) {", insert: "x"}.apply("package net\n\nfunc other() {\n}\n")
	if err == nil || !strings.Contains(err.Error(), "netFD) Read") {
		t.Fatalf("err = %v", err)
	}
	_, err = netOverlay(t.TempDir(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "net package") {
		t.Fatalf("netOverlay of an empty GOROOT: %v", err)
	}
}

// The stand-in descriptor net_mote.go hands to Control is the ABI's.
func TestStackSocketFDMatchesABI(t *testing.T) {
	want := fmt.Sprintf("const moteStackSocketFD = %#x\n", abi.StackSocketFD)
	got := strings.ReplaceAll(netMote, "_", "")
	if !strings.Contains(got, strings.ReplaceAll(want, "_", "")) {
		t.Errorf("net_mote.go does not declare %q", want)
	}
}
