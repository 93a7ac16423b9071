package tarimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SectorSize is the unit images are padded to.
const SectorSize = 512

// Pack writes the tree under dir to w as a tar archive of its directories
// and regular files, in lexical order (images are reproducible), padded to
// whole sectors. Symbolic links and special files are refused.
func Pack(dir string, w io.Writer) (int64, error) {
	cw := &counter{w: w}
	tw := tar.NewWriter(cw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return fmt.Errorf("%s: not a regular file or directory (links are not followed)", p)
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname, h.Uid, h.Gid = "", "", 0, 0
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return cw.n, fmt.Errorf("mkimage %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	if pad := (SectorSize - cw.n%SectorSize) % SectorSize; pad > 0 {
		if _, err := cw.Write(make([]byte, pad)); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

// PackFile packs dir into a new file at path.
func PackFile(dir, path string) (int64, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		return 0, fmt.Errorf("mkimage: %s is not a directory", dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := Pack(dir, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return n, err
}

// Check reads an image through and reports the first problem: not a tar
// archive, truncated, not sector-padded, or holding entries other than
// files and directories.
func Check(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 || st.Size()%SectorSize != 0 {
		return fmt.Errorf("image %s: %d bytes is not a whole number of %d-byte sectors", path, st.Size(), SectorSize)
	}
	cr := &countReader{r: f}
	tr := tar.NewReader(cr)
	files := 0
	var end int64 // where the last entry's data ends, padded to a block
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("image %s: not a valid tar archive: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			return fmt.Errorf("image %s: %s is not a regular file or directory", path, h.Name)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("image %s: %s: truncated: %w", path, h.Name, err)
		}
		end = (cr.n + 511) &^ 511
		files++
	}
	if files == 0 {
		return fmt.Errorf("image %s: empty or not a tar archive", path)
	}
	// A tar cut at an entry boundary still parses: the end-of-archive
	// marker (two zero blocks) is what shows it is whole.
	trailer := make([]byte, 1024)
	if _, err := f.ReadAt(trailer, end); err != nil || !bytes.Equal(trailer, make([]byte, 1024)) {
		return fmt.Errorf("image %s: truncated: no end-of-archive marker after the last entry", path)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Unpack extracts the image at path into dir (which must exist): its
// directories and regular files, with their modes' permission bits.
// Names that would leave dir (absolute, "..") and entries of any other
// kind are refused, as Check refuses them.
func Unpack(path, dir string) error {
	if err := Check(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", path, err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if !filepath.IsLocal(name) && name != "." {
			return fmt.Errorf("image %s: %s leaves the image's tree", path, h.Name)
		}
		dst := filepath.Join(dir, name)
		perm := os.FileMode(h.Mode) & 0o755
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, perm|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o400)
			if err != nil {
				return fmt.Errorf("image %s: %w", path, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("image %s: %s: %w", path, h.Name, err)
			}
		default:
			return fmt.Errorf("image %s: %s is not a regular file or directory", path, h.Name)
		}
	}
}
