package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"sync"
)

// Device is what the store needs of a block device (mote.Block has it).
type Device interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Size() int64
	SectorSize() int64
}

const (
	superMagic  = 0x4d4f5445_4b560001 // "MOTEKV", version 1
	recordMagic = 0x4b565245          // "KVRE"
	headerSize  = 4096                // two superblock slots, one sector each at least
	recHeader   = 32

	// MaxKey and MaxValue bound one record.
	MaxKey   = 1024
	MaxValue = 1 << 20

	flagDelete = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors.
var (
	ErrTooLarge = errors.New("kv: key or value too large")
	ErrFull     = errors.New("kv: device full (even after compaction)")
	ErrClosed   = errors.New("kv: store closed")
	// ErrNotStore is returned for a device that is neither blank nor a
	// store with a valid superblock.
	ErrNotStore = errors.New("kv: the device holds no valid superblock and is not blank (corrupted, or not a kv store); refusing to format it")
)

// Store is an open store.
type Store struct {
	mu      sync.Mutex
	dev     Device
	sector  int64
	region  int64 // bytes per region
	gen     uint64
	active  int   // 0 or 1
	end     int64 // next append offset within the active region
	seq     uint64
	data    map[string][]byte
	garbage int64 // bytes of records superseded since the last compaction
	closed  bool
}

func (s *Store) regionBase(r int) int64 { return headerSize + int64(r)*s.region }

// Open opens the store on dev, formatting it if it holds none.
func Open(dev Device) (*Store, error) {
	ss := dev.SectorSize()
	if ss <= 0 || headerSize%ss != 0 || ss > headerSize/2 {
		return nil, fmt.Errorf("kv: sector size %d not supported", ss)
	}
	region := (dev.Size() - headerSize) / 2 / ss * ss
	if region < 16*ss {
		return nil, fmt.Errorf("kv: device of %d bytes is too small", dev.Size())
	}
	s := &Store{dev: dev, sector: ss, region: region, data: map[string][]byte{}}
	gen, active, ok, err := s.readSuper()
	if err != nil {
		return nil, err
	}
	if !ok {
		// No valid superblock. Only a blank device is formatted: anything
		// else may be a store whose superblocks were damaged, or another
		// device altogether, and formatting it would lose its data.
		blank, err := s.blankHeader()
		if err != nil {
			return nil, err
		}
		if !blank {
			return nil, ErrNotStore
		}
		// Commit generation 1 with region 0 active. The region may hold
		// anything; records of another generation are not ours.
		s.gen, s.active = 1, 0
		if err := s.writeSuper(); err != nil {
			return nil, err
		}
		return s, nil
	}
	s.gen, s.active = gen, active
	if err := s.replay(); err != nil {
		return nil, err
	}
	return s, nil
}

// blankHeader reports whether the superblock area is all zeros.
func (s *Store) blankHeader() (bool, error) {
	buf := make([]byte, headerSize)
	if _, err := s.dev.ReadAt(buf, 0); err != nil {
		return false, fmt.Errorf("kv: reading superblocks: %w", err)
	}
	for _, b := range buf {
		if b != 0 {
			return false, nil
		}
	}
	return true, nil
}

// superblock: magic u64, gen u64, active u32, crc u32 (over the first 20 bytes).
func (s *Store) readSuper() (gen uint64, active int, ok bool, err error) {
	buf := make([]byte, headerSize)
	if _, err := s.dev.ReadAt(buf, 0); err != nil {
		return 0, 0, false, fmt.Errorf("kv: reading superblocks: %w", err)
	}
	for slot := 0; slot < 2; slot++ {
		b := buf[slot*headerSize/2:]
		if binary.LittleEndian.Uint64(b) != superMagic {
			continue
		}
		if crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:]) {
			continue
		}
		g, a := binary.LittleEndian.Uint64(b[8:]), int(binary.LittleEndian.Uint32(b[16:]))
		if a > 1 {
			continue
		}
		if !ok || g > gen {
			gen, active, ok = g, a, true
		}
	}
	return gen, active, ok, nil
}

// writeSuper commits s.gen and s.active to slot gen%2, leaving the other.
func (s *Store) writeSuper() error {
	b := make([]byte, headerSize/2)
	binary.LittleEndian.PutUint64(b, superMagic)
	binary.LittleEndian.PutUint64(b[8:], s.gen)
	binary.LittleEndian.PutUint32(b[16:], uint32(s.active))
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	if _, err := s.dev.WriteAt(b, int64(s.gen%2)*headerSize/2); err != nil {
		return fmt.Errorf("kv: writing superblock: %w", err)
	}
	if err := s.dev.Sync(); err != nil {
		return fmt.Errorf("kv: syncing superblock: %w", err)
	}
	return nil
}

// record: magic u32, crc u32 (over bytes 8.. of header, key and value),
// gen u64, seq u64, keylen u16, flags u16, vallen u32; then key, value;
// padded to whole sectors.
func (s *Store) encode(key string, value []byte, flags uint16) []byte {
	n := recHeader + len(key) + len(value)
	n = int((int64(n) + s.sector - 1) / s.sector * s.sector)
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, recordMagic)
	binary.LittleEndian.PutUint64(b[8:], s.gen)
	binary.LittleEndian.PutUint64(b[16:], s.seq)
	binary.LittleEndian.PutUint16(b[24:], uint16(len(key)))
	binary.LittleEndian.PutUint16(b[26:], flags)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(value)))
	copy(b[recHeader:], key)
	copy(b[recHeader+len(key):], value)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:recHeader+len(key)+len(value)], castagnoli))
	return b
}

// replay reads the active region's log up to its first invalid record.
func (s *Store) replay() error {
	base := s.regionBase(s.active)
	hdr := make([]byte, s.sector)
	for s.end+s.sector <= s.region {
		if _, err := s.dev.ReadAt(hdr, base+s.end); err != nil {
			return fmt.Errorf("kv: reading the log at %d: %w", s.end, err)
		}
		if binary.LittleEndian.Uint32(hdr) != recordMagic || binary.LittleEndian.Uint64(hdr[8:]) != s.gen {
			break
		}
		klen, vlen := int(binary.LittleEndian.Uint16(hdr[24:])), int(binary.LittleEndian.Uint32(hdr[28:]))
		if klen > MaxKey || vlen > MaxValue {
			break
		}
		n := int64(recHeader + klen + vlen)
		n = (n + s.sector - 1) / s.sector * s.sector
		if s.end+n > s.region {
			break
		}
		rec := make([]byte, n)
		if _, err := s.dev.ReadAt(rec, base+s.end); err != nil {
			return fmt.Errorf("kv: reading the log at %d: %w", s.end, err)
		}
		if crc32.Checksum(rec[8:recHeader+klen+vlen], castagnoli) != binary.LittleEndian.Uint32(rec[4:]) {
			break // torn or corrupt: the log ends here
		}
		seq := binary.LittleEndian.Uint64(rec[16:])
		if seq <= s.seq && s.seq != 0 {
			break
		}
		s.seq = seq
		key := string(rec[recHeader : recHeader+klen])
		if _, ok := s.data[key]; ok {
			s.garbage += n
		}
		if binary.LittleEndian.Uint16(rec[26:])&flagDelete != 0 {
			delete(s.data, key)
			s.garbage += n
		} else {
			s.data[key] = append([]byte(nil), rec[recHeader+klen:recHeader+klen+vlen]...)
		}
		s.end += n
	}
	return nil
}

// Get returns the value of key.
func (s *Store) Get(key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	v, ok := s.data[key]
	return append([]byte(nil), v...), ok, nil
}

// Put sets key to value; when it returns nil the change is durable.
func (s *Store) Put(key string, value []byte) error {
	if len(key) == 0 || len(key) > MaxKey || len(value) > MaxValue {
		return ErrTooLarge
	}
	return s.append(key, value, 0)
}

// Delete removes key; when it returns nil the removal is durable.
func (s *Store) Delete(key string) error {
	if len(key) == 0 || len(key) > MaxKey {
		return ErrTooLarge
	}
	return s.append(key, nil, flagDelete)
}

func (s *Store) append(key string, value []byte, flags uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.seq++
	rec := s.encode(key, value, flags)
	if s.end+int64(len(rec)) > s.region {
		if err := s.compact(); err != nil {
			return err
		}
		if s.end+int64(len(rec)) > s.region {
			return ErrFull
		}
		s.seq++
		rec = s.encode(key, value, flags)
	}
	if _, err := s.dev.WriteAt(rec, s.regionBase(s.active)+s.end); err != nil {
		return fmt.Errorf("kv: write: %w", err)
	}
	if err := s.dev.Sync(); err != nil {
		return fmt.Errorf("kv: sync: %w", err)
	}
	s.end += int64(len(rec))
	if _, ok := s.data[key]; ok || flags&flagDelete != 0 {
		s.garbage += int64(len(rec))
	}
	if flags&flagDelete != 0 {
		delete(s.data, key)
	} else {
		s.data[key] = append([]byte(nil), value...)
	}
	return nil
}

// Compact rewrites the live data into the other region and switches to it.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.compact()
}

func (s *Store) compact() error {
	next, gen := 1-s.active, s.gen+1
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	old := struct {
		gen    uint64
		active int
	}{s.gen, s.active}
	s.gen = gen // records of the new region carry the new generation
	var end int64
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := s.dev.WriteAt(buf, s.regionBase(next)+end-int64(len(buf)))
		buf = buf[:0]
		return err
	}
	for _, k := range keys {
		s.seq++
		rec := s.encode(k, s.data[k], 0)
		if end+int64(len(rec)) > s.region {
			s.gen = old.gen
			return ErrFull
		}
		buf = append(buf, rec...)
		end += int64(len(rec))
		if len(buf) >= 1<<20 {
			if err := flush(); err != nil {
				s.gen = old.gen
				return fmt.Errorf("kv: compaction: %w", err)
			}
		}
	}
	// Whatever follows the new log in the region carries an older
	// generation, so replay stops there.
	// The new region must be durable before the superblock points at it.
	err := flush()
	if err == nil {
		err = s.dev.Sync()
	}
	if err != nil {
		s.gen = old.gen
		return fmt.Errorf("kv: compaction: %w", err)
	}
	s.active = next
	if err := s.writeSuper(); err != nil {
		s.gen, s.active = old.gen, old.active
		return err
	}
	s.end, s.garbage = end, 0
	return nil
}

// List returns the keys with the prefix, sorted.
func (s *Store) List(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Len is the number of keys.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

// Close stops using the device (it does not close it).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
