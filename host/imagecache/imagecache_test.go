package imagecache

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// image writes a file of n bytes whose content depends on seed.
func image(t *testing.T, dir string, seed byte, n int) *os.File {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	path := filepath.Join(dir, fmt.Sprintf("img%d", seed))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newCache is a cache in a directory that does not exist yet, as the
// default one at first use.
func newCache(t *testing.T) Cache {
	return Cache{Dir: filepath.Join(t.TempDir(), "cache")}
}

// copies lists the names of the cache's copies.
func copies(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := Cache{Dir: dir}.Copies()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

// mustOpen opens img's copy in c, closed when the test ends.
func mustOpen(t *testing.T, c Cache, img *os.File) *os.File {
	t.Helper()
	f, err := c.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestCopyIsMadeOnceAndShared(t *testing.T) {
	src := t.TempDir()
	c := newCache(t)
	img := image(t, src, 1, 3<<20+123)
	a := mustOpen(t, c, img)
	b := mustOpen(t, c, img)
	if inode(t, a) != inode(t, b) {
		t.Fatal("a second Open made a second copy")
	}
	got, err := os.ReadFile(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("the copy differs from the image")
	}
	st, err := os.Stat(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory mode %v, want 0700", st.Mode().Perm())
	}
	if n := len(copies(t, c.Dir)); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
}

func TestChangedImageGetsANewCopy(t *testing.T) {
	src := t.TempDir()
	c := newCache(t)
	img := image(t, src, 1, 8192)
	mustOpen(t, c, img)
	// Rebuilt in place: same path, new content and times.
	later := time.Now().Add(time.Second)
	if err := os.WriteFile(img.Name(), bytes.Repeat([]byte{7}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(img.Name(), later, later)
	img2, err := os.Open(img.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer img2.Close()
	b := mustOpen(t, c, img2)
	got, _ := os.ReadFile(b.Name())
	if !bytes.Equal(got, bytes.Repeat([]byte{7}, 8192)) {
		t.Fatal("the changed image booted from the old copy")
	}
}

func TestLeastRecentlyUsedCopiesAreRemoved(t *testing.T) {
	src := t.TempDir()
	c := newCache(t)
	var imgs []*os.File
	for i := 0; i < Keep+3; i++ {
		imgs = append(imgs, image(t, src, byte(i), 4096))
	}
	base := time.Now().Add(-time.Hour)
	names := map[int]string{}
	for i, img := range imgs[:Keep] {
		f := mustOpen(t, c, img)
		names[i] = filepath.Base(f.Name())
		// Copy i was last used at base+i; the first is the oldest.
		os.Chtimes(f.Name(), base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute))
	}
	// Using copy 0 again makes it the newest.
	mustOpen(t, c, imgs[0])
	os.WriteFile(filepath.Join(c.Dir, ".new-left-by-a-dead-copier"), []byte("x"), 0o600)
	for _, img := range imgs[Keep:] {
		mustOpen(t, c, img)
	}
	got := copies(t, c.Dir)
	if len(got) != Keep {
		t.Fatalf("%d copies after %d images, want %d", len(got), len(imgs), Keep)
	}
	have := strings.Join(got, " ")
	for i := 1; i <= 3; i++ {
		if strings.Contains(have, names[i]) {
			t.Errorf("copy %d, among the least recently used, was kept", i)
		}
	}
	if !strings.Contains(have, names[0]) {
		t.Error("copy 0, used again, was removed")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, ".new-left-by-a-dead-copier")); err == nil {
		t.Error("a dead copier's temporary file was left")
	}
}

func TestDamagedCopyIsReplaced(t *testing.T) {
	c := newCache(t)
	img := image(t, t.TempDir(), 3, 10000)
	a := mustOpen(t, c, img)
	if err := os.Truncate(a.Name(), 100); err != nil {
		t.Fatal(err)
	}
	b := mustOpen(t, c, img)
	got, _ := os.ReadFile(b.Name())
	want, _ := os.ReadFile(img.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("a truncated copy was used")
	}
}

func TestSharedDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	img := image(t, t.TempDir(), 4, 4096)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (Cache{Dir: dir}).Open(img); err == nil || !strings.Contains(err.Error(), "not a directory private to this user") {
		t.Fatalf("a directory others can read: err %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := (Cache{Dir: link}).Open(img); err == nil {
		t.Fatal("a symbolic link was taken for the cache directory")
	}
}

// TestStartsTogetherCopyOnce opens one new image from many goroutines at
// once, as instances started together do: one copy is made, and everyone
// gets it.
func TestStartsTogetherCopyOnce(t *testing.T) {
	c := newCache(t)
	img := image(t, t.TempDir(), 5, 1<<20)
	const n = 16
	inodes := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.Open(img)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			inodes[i] = st.Sys().(*syscall.Stat_t).Ino
		}()
	}
	wg.Wait()
	for i := range inodes {
		if inodes[i] != inodes[0] {
			t.Fatalf("opener %d got another copy", i)
		}
	}
	if got := copies(t, c.Dir); len(got) != 1 {
		t.Fatalf("copies %v, want one", got)
	}
}
