package tarfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// FS is a read-only tree indexed from a tar archive.
type FS struct {
	r       io.ReaderAt
	entries map[string]*entry // by clean path; "." is the root
}

type entry struct {
	name     string // base name
	mode     fs.FileMode
	size     int64
	modTime  time.Time
	off      int64    // data offset in the archive
	children []string // directories: sorted base names
}

// Error is a malformed archive.
type Error struct {
	Offset int64
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("tarfs: bad archive at byte %d: %s", e.Offset, e.Reason)
}

// positioned tracks how far the tar reader has read, to learn where each
// file's data starts.
type positioned struct {
	r    io.ReaderAt
	pos  int64
	size int64
}

func (p *positioned) Read(b []byte) (int, error) {
	if p.pos >= p.size {
		return 0, io.EOF
	}
	if int64(len(b)) > p.size-p.pos {
		b = b[:p.size-p.pos]
	}
	n, err := p.r.ReadAt(b, p.pos)
	p.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (p *positioned) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += p.pos
	case io.SeekEnd:
		off += p.size
	}
	if off < 0 {
		return 0, errors.New("tarfs: negative seek")
	}
	p.pos = off
	return off, nil
}

// New indexes the archive in r, which is size bytes long. Regular files and
// directories are kept; links and special files are refused, since a tree
// served from an image should be exactly its files.
func New(r io.ReaderAt, size int64) (*FS, error) {
	f := &FS{r: r, entries: map[string]*entry{".": {name: ".", mode: fs.ModeDir | 0o555}}}
	p := &positioned{r: r, size: size}
	tr := tar.NewReader(p)
	for {
		at := p.pos
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &Error{at, err.Error()}
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if !fs.ValidPath(name) {
			return nil, &Error{at, fmt.Sprintf("invalid path %q", h.Name)}
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Size < 0 || p.pos+h.Size > size {
				return nil, &Error{at, fmt.Sprintf("%s: %d bytes of data run past the end of the archive (truncated?)", name, h.Size)}
			}
			f.add(name, &entry{mode: fs.FileMode(h.Mode).Perm() &^ 0o222, size: h.Size, modTime: h.ModTime, off: p.pos})
		case tar.TypeDir:
			f.add(name, &entry{mode: fs.ModeDir | 0o555, modTime: h.ModTime})
		default:
			return nil, &Error{at, fmt.Sprintf("%s: entry type %q is not a regular file or directory", name, h.Typeflag)}
		}
	}
	for _, e := range f.entries {
		sort.Strings(e.children)
	}
	return f, nil
}

// add records an entry and any missing parent directories.
func (f *FS) add(name string, e *entry) {
	e.name = path.Base(name)
	if old, ok := f.entries[name]; ok && old.mode.IsDir() && e.mode.IsDir() {
		old.modTime = e.modTime
		return
	}
	if _, ok := f.entries[name]; !ok {
		dir := path.Dir(name)
		if _, ok := f.entries[dir]; !ok {
			f.add(dir, &entry{mode: fs.ModeDir | 0o555})
		}
		parent := f.entries[dir]
		parent.children = append(parent.children, e.name)
	}
	f.entries[name] = e
}

// Open opens the named file or directory.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	e, ok := f.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if e.mode.IsDir() {
		return &dir{fs: f, path: name, e: e}, nil
	}
	return &file{e: e, sr: io.NewSectionReader(f.r, e.off, e.size)}, nil
}

// ReadFile reads a whole file (fs.ReadFileFS).
func (f *FS) ReadFile(name string) ([]byte, error) {
	fl, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	rf, ok := fl.(*file)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	b := make([]byte, rf.e.size)
	if _, err := rf.sr.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

type info struct{ e *entry }

func (i info) Name() string               { return i.e.name }
func (i info) Size() int64                { return i.e.size }
func (i info) Mode() fs.FileMode          { return i.e.mode }
func (i info) ModTime() time.Time         { return i.e.modTime }
func (i info) IsDir() bool                { return i.e.mode.IsDir() }
func (i info) Sys() any                   { return nil }
func (i info) Type() fs.FileMode          { return i.e.mode.Type() }
func (i info) Info() (fs.FileInfo, error) { return i, nil }

// file is an open regular file; it seeks, so http.FileServer can serve
// ranges from it.
type file struct {
	e  *entry
	sr *io.SectionReader
}

func (f *file) Stat() (fs.FileInfo, error)                { return info{f.e}, nil }
func (f *file) Read(b []byte) (int, error)                { return f.sr.Read(b) }
func (f *file) ReadAt(b []byte, off int64) (int, error)   { return f.sr.ReadAt(b, off) }
func (f *file) Seek(off int64, whence int) (int64, error) { return f.sr.Seek(off, whence) }
func (f *file) Close() error                              { return nil }

type dir struct {
	fs   *FS
	path string
	e    *entry
	next int
}

func (d *dir) Stat() (fs.FileInfo, error) { return info{d.e}, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}
func (d *dir) Close() error { return nil }

// ReadDir lists the directory in name order (fs.ReadDirFile).
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	left := d.e.children[d.next:]
	if n > 0 && len(left) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(left) {
		left = left[:n]
	}
	out := make([]fs.DirEntry, len(left))
	for i, c := range left {
		out[i] = info{d.fs.entries[path.Join(d.path, c)]}
	}
	d.next += len(left)
	return out, nil
}
