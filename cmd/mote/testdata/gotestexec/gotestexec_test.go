// Package gotestexec is a package whose tests mote's tests run with
// go test -exec 'mote exec': they read testdata/, use t.TempDir and must
// not write into the package directory.
package gotestexec

import (
	"flag"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/in.txt")
	if err != nil || string(b) != "golden\n" {
		t.Fatalf("%q %v", b, err)
	}
}

func TestTempDir(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "x"), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTestdataRefused(t *testing.T) {
	if err := os.WriteFile("testdata/out.txt", []byte("y"), 0o600); err == nil {
		t.Fatal("wrote into the package directory")
	}
}

var fail = flag.Bool("fail", false, "fail, to show that a failure reaches go test")

func TestFailsWhenAsked(t *testing.T) {
	if *fail {
		t.Fatal("asked to fail")
	}
}

// TestAllocatesAsTestsDo holds 160 MiB for a moment, as Go's own tests
// do, then maps a little more: under 64M (mote run's default) spt's data
// limit refused the mapping; mote exec gives tests 512M.
func TestAllocatesAsTestsDo(t *testing.T) {
	big := make([]byte, 160<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	big = nil
	b, err := syscall.Mmap(-1, 0, 3*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANONYMOUS|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap after a large allocation: %v", err)
	}
	syscall.Munmap(b)
}
