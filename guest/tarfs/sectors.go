package tarfs

import (
	"container/list"
	"io"
	"sync"
)

// Sectors adapts a device that reads only whole, aligned sectors (such as
// a mote block device) to an io.ReaderAt for any offset and length, with
// an LRU cache of chunks: on a unikernel each device read is a VM exit, so
// a file served twice is read once.
type Sectors struct {
	dev    io.ReaderAt
	size   int64
	chunk  int64
	limit  int
	mu     sync.Mutex
	cache  map[int64]*list.Element
	lru    *list.List
	Misses int64 // device reads, for tests and benchmarks
}

type chunk struct {
	index int64
	data  []byte
}

// NewSectors wraps a device of size bytes whose reads must be multiples of
// sectorSize at multiples of it; cacheBytes bounds the cache.
func NewSectors(dev io.ReaderAt, size, sectorSize int64, cacheBytes int) *Sectors {
	c := int64(64 << 10)
	if c%sectorSize != 0 {
		c = sectorSize * (c/sectorSize + 1)
	}
	return &Sectors{dev: dev, size: size, chunk: c, limit: max(1, cacheBytes/int(c)), cache: map[int64]*list.Element{}, lru: list.New()}
}

// ReadAt reads len(p) bytes at off, through the cache.
func (s *Sectors) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= s.size {
			return n, io.EOF
		}
		data, err := s.get(pos / s.chunk)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[pos%s.chunk:])
	}
	return n, nil
}

func (s *Sectors) get(i int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.cache[i]; ok {
		s.lru.MoveToFront(e)
		return e.Value.(*chunk).data, nil
	}
	start := i * s.chunk
	n := min(s.chunk, s.size-start)
	data := make([]byte, n)
	if _, err := s.dev.ReadAt(data, start); err != nil && err != io.EOF {
		return nil, err
	}
	s.Misses++
	s.cache[i] = s.lru.PushFront(&chunk{i, data})
	if s.lru.Len() > s.limit {
		old := s.lru.Remove(s.lru.Back()).(*chunk)
		delete(s.cache, old.index)
	}
	return data, nil
}
