package mote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moteos/mote/abi"
)

// The API on the unix target, with a manifest as mote run -t unix writes
// it: host sockets, a block device in a host file, a file tree in a
// directory.

var (
	blockPath, roPath, treeDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mote-api-test-")
	if err != nil {
		panic(err)
	}
	blockPath = filepath.Join(dir, "disk.img")
	roPath = filepath.Join(dir, "ro.img")
	treeDir = filepath.Join(dir, "www")
	os.WriteFile(blockPath, make([]byte, 8*512), 0o644)
	os.WriteFile(roPath, bytes.Repeat([]byte{7}, 512), 0o644)
	os.MkdirAll(filepath.Join(treeDir, "css"), 0o755)
	os.WriteFile(filepath.Join(treeDir, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	os.WriteFile(filepath.Join(treeDir, "css", "a.css"), []byte("b{}"), 0o644)
	man := abi.Manifest{Version: abi.Version, Target: abi.TargetUnix,
		Block: []abi.Block{
			{Name: "disk", Path: blockPath, SectorSize: 512, Sectors: 8},
			{Name: "rom", Path: roPath, SectorSize: 512, Sectors: 1, ReadOnly: true},
		},
		FS: []abi.Tree{{Name: "www", Path: treeDir}},
	}
	js, err := man.Encode()
	if err != nil {
		panic(err)
	}
	os.Setenv(abi.EnvManifest, string(js))
	manifestOnce = sync.Once{} // the package's init read the environment before this
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestTarget(t *testing.T) {
	if Target() != "unix" {
		t.Fatalf("Target() = %q", Target())
	}
}

func TestTCPAndUDP(t *testing.T) {
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("echo"))
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "echo" {
		t.Fatalf("tcp echo %q %v", buf, err)
	}
	c.Close()

	pc, err := ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := DialContext(context.Background(), "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("dgram"))
	pc.SetDeadline(time.Now().Add(5 * time.Second))
	dg := make([]byte, 16)
	n, _, err := pc.ReadFrom(dg)
	if err != nil || string(dg[:n]) != "dgram" {
		t.Fatalf("udp: %q %v", dg[:n], err)
	}
	if Resolver() != net.DefaultResolver {
		t.Error("unix resolver is not the host's")
	}
	if _, err := Listen("sctp", ":0"); err == nil {
		t.Error("sctp listen succeeded")
	}
}

func TestBlock(t *testing.T) {
	b, err := OpenBlock("disk")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Size() != 4096 || b.SectorSize() != 512 || b.ReadOnly() {
		t.Fatalf("size %d sector %d ro %v", b.Size(), b.SectorSize(), b.ReadOnly())
	}
	data := bytes.Repeat([]byte("mote"), 256) // two sectors
	if _, err := b.WriteAt(data, 1024); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1024)
	if _, err := b.ReadAt(got, 1024); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	onDisk, _ := os.ReadFile(blockPath)
	if !bytes.Equal(onDisk[1024:2048], data) {
		t.Fatal("write did not reach the host file")
	}
	for _, c := range []struct {
		n    int
		off  int64
		want error
	}{
		{512, 100, ErrMisaligned},
		{100, 0, ErrMisaligned},
		{512, 4096, ErrOutOfRange},
		{1024, 3584, ErrOutOfRange},
		{512, -512, ErrOutOfRange},
	} {
		if _, err := b.ReadAt(make([]byte, c.n), c.off); !errors.Is(err, c.want) {
			t.Errorf("ReadAt(%d, %d) = %v, want %v", c.n, c.off, err, c.want)
		}
		if _, err := b.WriteAt(make([]byte, c.n), c.off); !errors.Is(err, c.want) {
			t.Errorf("WriteAt(%d, %d) = %v, want %v", c.n, c.off, err, c.want)
		}
	}
	after, _ := os.ReadFile(blockPath)
	if !bytes.Equal(after, onDisk) {
		t.Error("a refused write changed the host file")
	}
	if _, err := OpenBlock("disk"); err == nil {
		t.Error("opened the same device twice")
	}

	rom, err := OpenBlock("rom")
	if err != nil {
		t.Fatal(err)
	}
	defer rom.Close()
	if _, err := rom.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write to a read-only device: %v", err)
	}
	if _, err := OpenBlock("nosuch"); err == nil || !strings.Contains(err.Error(), "--block nosuch=FILE") {
		t.Errorf("missing device: %v", err)
	}
}

func TestFS(t *testing.T) {
	fsys, err := FS("www")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "css/a.css")
	if err != nil || string(b) != "b{}" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := fs.ReadFile(fsys, "../disk.img"); err == nil {
		t.Error("escaped the tree")
	}
	if _, err := FS("nosuch"); err == nil {
		t.Error("missing tree opened")
	}
}

func TestLogger(t *testing.T) {
	if Logger() == nil {
		t.Fatal("nil logger")
	}
}
