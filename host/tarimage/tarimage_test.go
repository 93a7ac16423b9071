package tarimage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackAndCheck(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "a.txt"), []byte("alpha"), 0o644)
	os.WriteFile(filepath.Join(dir, "tree", "sub", "b.txt"), bytes.Repeat([]byte("b"), 3000), 0o644)
	img := filepath.Join(dir, "tree.img")
	n, err := PackFile(filepath.Join(dir, "tree"), img)
	if err != nil || n%SectorSize != 0 {
		t.Fatalf("pack: %d bytes, %v", n, err)
	}
	if err := Check(img); err != nil {
		t.Fatal(err)
	}
	// Reproducible: the same tree gives the same bytes.
	img2 := filepath.Join(dir, "again.img")
	PackFile(filepath.Join(dir, "tree"), img2)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(img2)
	if !bytes.Equal(a, b) {
		t.Error("packing twice gave different images")
	}

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	for name, c := range map[string]struct {
		path, want string
	}{
		"not sectors": {write("odd", []byte("hello")), "sectors"},
		"garbage":     {write("garbage", bytes.Repeat([]byte{7}, 1024)), "not a valid tar"},
		"truncated":   {write("trunc", a[:1024]), "truncated"},
		"cut in data": {write("cut", a[:len(a)-2048]), "truncated"},
		"empty tar":   {write("zeros", make([]byte, 1024)), "empty"},
	} {
		if err := Check(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	os.Symlink("/etc/passwd", filepath.Join(dir, "tree", "link"))
	if _, err := PackFile(filepath.Join(dir, "tree"), filepath.Join(dir, "bad.img")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlink packed: %v", err)
	}
}

// Unpack gives back the tree Pack packed.
func TestUnpack(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "f.txt"), []byte("deep\n"), 0o644)
	os.WriteFile(filepath.Join(src, "top"), []byte("top\n"), 0o600)
	img := filepath.Join(t.TempDir(), "tree.img")
	if _, err := PackFile(src, img); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Unpack(img, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a/b/f.txt": "deep\n", "top": "top\n"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if err := Unpack("/etc/hostname", t.TempDir()); err == nil {
		t.Error("a file that is no image was unpacked")
	}
}
