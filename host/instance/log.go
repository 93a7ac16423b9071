package instance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The console log: the guest's output, one record per line, each line
// prefixed with the time it arrived (RFC 3339, UTC, nanoseconds) so that
// logs --since can choose. The file is bounded: past max bytes it is
// renamed to FILE.1 (the previous one dropped), so an instance keeps at
// most twice max of its console on disk.

// DefaultMaxLog bounds each of the two log files.
const DefaultMaxLog = 8 << 20

// maxLine bounds a line kept whole: longer output is cut into records of
// this size, so that a guest writing without newlines cannot grow a
// record without end.
const maxLine = 16 << 10

// Log is the writer of an instance's console log. Write is safe from
// several goroutines (the guest's stdout and stderr).
type Log struct {
	mu      sync.Mutex
	path    string
	max     int64
	f       *os.File
	size    int64
	partial []byte // a line not ended yet
}

// OpenLog opens (appends to) the log at path.
func OpenLog(path string, max int64) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Log{path: path, max: max, f: f, size: st.Size()}, nil
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(l.partial)
			if len(p) < room {
				l.partial = append(l.partial, p...)
				return n, nil
			}
			l.partial = append(l.partial, p[:room]...)
			p = p[room:]
		} else {
			l.partial = append(l.partial, p[:i]...)
			p = p[i+1:]
		}
		if err := l.recordLocked(); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

func (l *Log) recordLocked() error {
	rec := make([]byte, 0, len(l.partial)+40)
	rec = time.Now().UTC().AppendFormat(rec, time.RFC3339Nano)
	rec = append(append(append(rec, ' '), l.partial...), '\n')
	l.partial = l.partial[:0]
	if l.size+int64(len(rec)) > l.max && l.size > 0 {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		l.f, l.size = f, 0
	}
	_, err := l.f.Write(rec)
	l.size += int64(len(rec))
	return err
}

// Close writes a line left unfinished and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.recordLocked()
	}
	return l.f.Close()
}

// ReadOptions choose what ReadLog shows.
type ReadOptions struct {
	Since      time.Time // records from then on
	Timestamps bool      // keep each record's time
	// Follow keeps reading as the log grows until ctx ends or Done says
	// the instance is over.
	Follow bool
	Done   func() bool
}

// ReadLog copies an instance's console to w: the rotated file, then the
// current one.
func (in *Instance) ReadLog(ctx context.Context, w io.Writer, o ReadOptions) error {
	path := filepath.Join(in.Dir, LogFile)
	var old, off int64
	if err := copyFrom(path+".1", w, o, &old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := copyFrom(path, w, o, &off); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for o.Follow {
		over := o.Done != nil && o.Done()
		if err := copyFrom(path, w, o, &off); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if over {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// copyFrom copies the whole records of path from *off on, and moves *off
// past them. A file shorter than *off was rotated: it is read from its
// start.
func copyFrom(path string, w io.Writer, o ReadOptions, off *int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < *off {
		*off = 0
	}
	if _, err := f.Seek(*off, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, maxLine+64)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil // an unfinished record waits for the next look
		}
		*off += int64(len(line))
		stamp, text, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, string(stamp))
		if err != nil || (!o.Since.IsZero() && t.Before(o.Since)) {
			continue
		}
		if o.Timestamps {
			text = line
		}
		if _, err := w.Write(text); err != nil {
			return err
		}
	}
}
