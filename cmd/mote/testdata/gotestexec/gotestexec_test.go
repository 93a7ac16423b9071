// Package gotestexec is a package whose tests mote's tests run with
// go test -exec 'mote exec': they read testdata/, use t.TempDir and must
// not write into the package directory.
package gotestexec

import (
	"flag"
	"os"
	"path/filepath"
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
