package imagecache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Keep is how many copies a cache directory holds at most: the least
// recently used beyond it are removed when a new one is made.
const Keep = 8

// DefaultDir is where mote keeps its copies: a directory of the user's in
// /dev/shm, the tmpfs every Linux system mounts for shared memory.
func DefaultDir() string { return fmt.Sprintf("/dev/shm/mote-%d", os.Geteuid()) }

// Cache is a directory of shared-memory copies of images.
type Cache struct {
	Dir string
}

// Open returns a descriptor, open for reading only, of the copy of the
// image file f, making the copy first if there is none. Copies are made
// read-only (mode 0400), so that nothing that maps one shared can write it.
func (c Cache) Open(f *os.File) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("imagecache: %s is not a regular file", f.Name())
	}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	name := filepath.Join(c.Dir, key(sys))
	if g, err := open(name, st.Size()); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return g, err
	}
	// Make the copy under the directory's lock, so that instances started
	// together copy an image once, and look again once the lock is ours.
	lock, err := os.OpenFile(filepath.Join(c.Dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("imagecache: locking %s: %w", c.Dir, err)
	}
	if g, err := open(name, st.Size()); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return g, err
	}
	c.evict(Keep - 1) // room for the new copy
	g, err := c.create(name, f, st.Size())
	if err != nil {
		// A full tmpfs: the other copies may be what fills it.
		c.evict(0)
		g, err = c.create(name, f, st.Size())
	}
	return g, err
}

// Copies lists the paths of the copies in the cache (not its lock or
// temporary files).
func (c Cache) Copies() ([]string, error) {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			paths = append(paths, filepath.Join(c.Dir, e.Name()))
		}
	}
	return paths, nil
}

// key names the copy of a file after the file's identity: a rebuilt or
// replaced image gets a new copy.
func key(st *syscall.Stat_t) string {
	id := fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// prepare makes the cache directory, or checks that the one there is the
// user's own and closed to everyone else: the guest's code comes from it.
func (c Cache) prepare() error {
	if err := os.Mkdir(c.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("imagecache: %w", err)
	}
	st, err := os.Lstat(c.Dir)
	if err != nil {
		return fmt.Errorf("imagecache: %w", err)
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || sys == nil || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("imagecache: %s is not a directory private to this user", c.Dir)
	}
	return nil
}

// open opens an existing copy and marks it used. A copy of the wrong size
// or owner is removed and reported as missing.
func open(name string, size int64) (*os.File, error) {
	g, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	st, err := g.Stat()
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || st.Size() != size || sys == nil || int(sys.Uid) != os.Geteuid() {
		g.Close()
		os.Remove(name)
		return nil, fs.ErrNotExist
	}
	// The modification time orders copies by last use for evict.
	unix.Futimes(int(g.Fd()), nil)
	return g, nil
}

// create copies the image under a temporary name and renames it into
// place, so that no one opens a partial copy.
func (c Cache) create(name string, f *os.File, size int64) (*os.File, error) {
	g, err := os.CreateTemp(c.Dir, ".new-")
	if err != nil {
		return nil, fmt.Errorf("imagecache: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		g.Close()
		os.Remove(g.Name())
		return nil, fmt.Errorf("imagecache: copying %s: %w", f.Name(), err)
	}
	// sendfile copies in the kernel, from the image's page cache.
	var off int64
	for off < size {
		n, err := unix.Sendfile(int(g.Fd()), int(f.Fd()), &off, int(size-off))
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return fail(errors.New("the file shrank while it was copied"))
		}
	}
	if err := g.Chmod(0o400); err != nil {
		return fail(err)
	}
	if err := os.Rename(g.Name(), name); err != nil {
		return fail(err)
	}
	g.Close()
	return open(name, size)
}

// Prune removes every copy, under the directory's lock so that no copy is
// removed half-made; instances booted from one keep it mapped. A missing
// directory holds nothing to prune.
func (c Cache) Prune() error {
	lock, err := os.OpenFile(filepath.Join(c.Dir, ".lock"), os.O_RDWR|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("imagecache: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("imagecache: locking %s: %w", c.Dir, err)
	}
	c.evict(0)
	return nil
}

// evict removes the least recently used copies beyond the newest keep,
// and temporary files that a copier which died left behind (the lock is
// held, so no temporary file is in use). Instances booted from a removed
// copy keep it mapped.
func (c Cache) evict(keep int) {
	if temps, err := filepath.Glob(filepath.Join(c.Dir, ".new-*")); err == nil {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	paths, err := c.Copies()
	if err != nil {
		return
	}
	used := map[string]int64{}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			used[p] = st.ModTime().UnixNano()
		}
	}
	sort.Slice(paths, func(i, j int) bool { return used[paths[i]] > used[paths[j]] })
	for i := keep; i < len(paths); i++ {
		os.Remove(paths[i])
	}
}
