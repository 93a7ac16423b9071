package kv

import (
	"errors"
	"math/rand"
)

// crashDevice is an in-memory block device that can crash the way a real
// one may: every write not yet covered by a completed Sync is, at the
// crash, applied, dropped or torn (some of its sectors written), in any
// order. Writes covered by a Sync are durable.
type crashDevice struct {
	durable []byte
	pending []pendingWrite
	sector  int64
	rnd     *rand.Rand
	// opsLeft, when positive, counts writes and syncs down to the crash:
	// the operation that reaches zero, and every one after, fails.
	opsLeft int
	crashed bool
}

var errCrashed = errors.New("device crashed")

func (d *crashDevice) tick() bool {
	if d.crashed {
		return false
	}
	if d.opsLeft > 0 {
		d.opsLeft--
		if d.opsLeft == 0 {
			d.crashed = true
			return false
		}
	}
	return true
}

type pendingWrite struct {
	off  int64
	data []byte
}

func newCrashDevice(size, sector int64, seed int64) *crashDevice {
	return &crashDevice{durable: make([]byte, size), sector: sector, rnd: rand.New(rand.NewSource(seed))}
}

func (d *crashDevice) Size() int64       { return int64(len(d.durable)) }
func (d *crashDevice) SectorSize() int64 { return d.sector }

// view is what a reader sees now: durable data with pending writes applied
// in order (the page cache of a running system).
func (d *crashDevice) view() []byte {
	v := append([]byte(nil), d.durable...)
	for _, w := range d.pending {
		copy(v[w.off:], w.data)
	}
	return v
}

func (d *crashDevice) ReadAt(p []byte, off int64) (int, error) {
	return copy(p, d.view()[off:]), nil
}

func (d *crashDevice) WriteAt(p []byte, off int64) (int, error) {
	if !d.tick() {
		// The crash comes in the middle of this write: part of it may
		// have reached the device's cache.
		d.pending = append(d.pending, pendingWrite{off, append([]byte(nil), p[:d.rnd.Intn(len(p)+1)]...)})
		return 0, errCrashed
	}
	d.pending = append(d.pending, pendingWrite{off, append([]byte(nil), p...)})
	return len(p), nil
}

func (d *crashDevice) Sync() error {
	if !d.tick() {
		return errCrashed
	}
	d.durable = d.view()
	d.pending = nil
	return nil
}

// crash loses, tears and reorders the unsynced writes, and returns the
// device as it would be found after a reboot.
func (d *crashDevice) crash() {
	d.rnd.Shuffle(len(d.pending), func(i, j int) { d.pending[i], d.pending[j] = d.pending[j], d.pending[i] })
	for _, w := range d.pending {
		switch d.rnd.Intn(3) {
		case 0: // lost
		case 1: // applied
			copy(d.durable[w.off:], w.data)
		case 2: // torn: a random subset of its sectors, one maybe half-written
			for s := int64(0); s < int64(len(w.data)); s += d.sector {
				if d.rnd.Intn(2) == 0 {
					n := min(d.sector, int64(len(w.data))-s)
					if d.rnd.Intn(4) == 0 {
						n = d.rnd.Int63n(n + 1)
					}
					copy(d.durable[w.off+s:], w.data[s:s+n])
				}
			}
		}
	}
	d.pending = nil
	d.crashed, d.opsLeft = false, 0
}
