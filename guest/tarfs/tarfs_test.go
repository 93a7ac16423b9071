package tarfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func archive(t *testing.T, files map[string]string, dirs ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, d := range dirs {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)})
	}
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1e9, 0)})
		tw.Write([]byte(body))
	}
	tw.Close()
	for b.Len()%512 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// strictDevice refuses what a block device refuses: unaligned access.
type strictDevice struct {
	b     []byte
	reads int
}

func (d *strictDevice) ReadAt(p []byte, off int64) (int, error) {
	if off%512 != 0 || len(p)%512 != 0 {
		return 0, fmt.Errorf("unaligned read of %d at %d", len(p), off)
	}
	d.reads++
	return copy(p, d.b[off:]), nil
}

func TestTree(t *testing.T) {
	img := archive(t, map[string]string{
		"index.html":     "<h1>home</h1>",
		"css/site.css":   "body{}",
		"docs/a/b/c.txt": strings.Repeat("x", 100000),
	}, "css", "empty")
	dev := &strictDevice{b: img}
	f, err := New(NewSectors(dev, int64(len(img)), 512, 1<<20), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(f, "index.html", "css/site.css", "docs/a/b/c.txt", "empty"); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(f, "docs/a/b/c.txt")
	if err != nil || len(b) != 100000 {
		t.Fatalf("big file: %d bytes, %v", len(b), err)
	}
	// Served by net/http, with a range request.
	srv := httptest.NewServer(http.FileServer(http.FS(f)))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/docs/a/b/c.txt", nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(body) != "xxxxxxxxxx" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	// A second reading of everything is served from the cache.
	before := dev.reads
	fs.ReadFile(f, "docs/a/b/c.txt")
	if dev.reads != before {
		t.Errorf("cached reads hit the device %d times", dev.reads-before)
	}
}

func TestBadArchives(t *testing.T) {
	good := archive(t, map[string]string{"a.txt": strings.Repeat("a", 5000)})
	garbage := bytes.Repeat([]byte{0x42}, 4096)
	truncated := good[:1024] // header and part of the data
	var sym bytes.Buffer
	tw := tar.NewWriter(&sym)
	tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.Close()
	var escape bytes.Buffer
	tw = tar.NewWriter(&escape)
	tw.WriteHeader(&tar.Header{Name: "../../etc/x", Typeflag: tar.TypeReg, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"garbage":   {garbage, "bad archive"},
		"truncated": {truncated, "past the end"},
		"symlink":   {sym.Bytes(), "not a regular file"},
		"escape":    {escape.Bytes(), "invalid path"},
	} {
		_, err := New(bytes.NewReader(c.img), int64(len(c.img)))
		var te *Error
		if err == nil || !errors.As(err, &te) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an *Error with %q", name, err, c.want)
		}
	}
}
