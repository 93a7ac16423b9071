package mote

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/moteos/mote/abi"
)

// Block is a block device: a fixed number of fixed-size sectors, read and
// written at sector-aligned offsets in whole sectors. It is an
// io.ReaderAt and io.WriterAt; Sync makes what was written durable.
type Block struct {
	name     string
	f        *os.File
	size     int64
	sector   int64
	readOnly bool
	mu       sync.Mutex
	closed   bool
}

var (
	// ErrMisaligned is returned for an offset or length that is not a
	// whole number of sectors.
	ErrMisaligned = errors.New("mote: block access not sector-aligned")
	// ErrOutOfRange is returned for an access past the end of the device.
	ErrOutOfRange = errors.New("mote: block access past the end of the device")
	// ErrReadOnly is returned for a write to a read-only device.
	ErrReadOnly = errors.New("mote: block device is read-only")
)

// OpenBlock opens the block device called name in the manifest
// (mote run --block NAME=FILE[,ro]).
func OpenBlock(name string) (*Block, error) {
	m, err := Manifest()
	if err != nil {
		return nil, err
	}
	for _, b := range m.Block {
		if b.Name != name {
			continue
		}
		openMu.Lock()
		defer openMu.Unlock()
		if openDevs[name] {
			return nil, fmt.Errorf("mote: block device %q is already open", name)
		}
		dev, err := openBlock(m.Target, b)
		if err == nil {
			openDevs[name] = true
		}
		return dev, err
	}
	return nil, fmt.Errorf("mote: no block device %q (mote run --block %s=FILE)", name, name)
}

var (
	openMu   sync.Mutex
	openDevs = map[string]bool{} // a device's descriptor is opened once
)

func openBlock(target string, b abi.Block) (*Block, error) {
	var f *os.File
	if target == abi.TargetUnix {
		flag := os.O_RDWR
		if b.ReadOnly {
			flag = os.O_RDONLY
		}
		var err error
		if f, err = os.OpenFile(b.Path, flag, 0); err != nil {
			return nil, fmt.Errorf("mote: block %s: %w", b.Name, err)
		}
	} else {
		f = os.NewFile(uintptr(b.FD), b.Name)
	}
	size := b.Sectors * int64(b.SectorSize)
	if target == abi.TargetUnix {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("mote: block %s: %w", b.Name, err)
		}
		size = st.Size()
		if size%int64(b.SectorSize) != 0 {
			f.Close()
			return nil, fmt.Errorf("mote: block %s: %s is %d bytes, not a multiple of the %d-byte sector", b.Name, b.Path, size, b.SectorSize)
		}
	}
	return &Block{name: b.Name, f: f, size: size, sector: int64(b.SectorSize), readOnly: b.ReadOnly}, nil
}

// Name is the device's name.
func (b *Block) Name() string { return b.name }

// Size is the device's capacity in bytes.
func (b *Block) Size() int64 { return b.size }

// SectorSize is the unit of every access.
func (b *Block) SectorSize() int64 { return b.sector }

// ReadOnly reports whether writes are refused.
func (b *Block) ReadOnly() bool { return b.readOnly }

func (b *Block) check(n int, off int64) error {
	if off%b.sector != 0 || int64(n)%b.sector != 0 {
		return fmt.Errorf("%w: %d bytes at %d (sector %d)", ErrMisaligned, n, off, b.sector)
	}
	if off < 0 || off > b.size || int64(n) > b.size-off {
		return fmt.Errorf("%w: %d bytes at %d (size %d)", ErrOutOfRange, n, off, b.size)
	}
	return nil
}

// ReadAt reads len(p) bytes at off; both must be whole sectors.
func (b *Block) ReadAt(p []byte, off int64) (int, error) {
	if err := b.check(len(p), off); err != nil {
		return 0, err
	}
	n, err := b.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// WriteAt writes len(p) bytes at off; both must be whole sectors.
func (b *Block) WriteAt(p []byte, off int64) (int, error) {
	if b.readOnly {
		return 0, ErrReadOnly
	}
	if err := b.check(len(p), off); err != nil {
		return 0, err
	}
	return b.f.WriteAt(p, off)
}

// Sync makes every completed write durable.
func (b *Block) Sync() error {
	if b.readOnly {
		return nil
	}
	return b.f.Sync()
}

// Close releases the device.
func (b *Block) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	openMu.Lock()
	delete(openDevs, b.name)
	openMu.Unlock()
	return b.f.Close()
}
