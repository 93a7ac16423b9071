package ringdev

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// spin is how long the device polls before it sleeps.
const spin = 50 * time.Microsecond

// Device is one NIC's mover. Its descriptors belong to the caller.
type Device struct {
	Ring   []byte // the rings, abi.RingSize bytes shared with the guest
	Host   int    // frames: TAP or SOCK_SEQPACKET
	Notify int    // eventfd the guest waits on; written when it asked
	Kick   int    // eventfd the guest's doorbell signals
	Stop   int    // readable when the device must stop

	RxFrames, TxFrames, Dropped, Kicks atomic.Uint64
}

func (d *Device) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&d.Ring[off])) }

// Serve moves frames until Stop is readable. The caller runs it on a
// thread of its own (runtime.LockOSThread): as an ordinary goroutine,
// which blocks in poll and polls in between, it moved between Go's
// threads, and the hand-offs and spinning threads cost the host more CPU
// than the device's work (hvt: 55 against 42 CPU-µs per HTTP request).
func (d *Device) Serve() {
	buf := make([]byte, 65536)
	var idleSince time.Time
	for {
		tx, txBlocked := d.moveTx()
		rx, rxFull := d.moveRx(buf)
		if tx || rx {
			idleSince = time.Time{}
			continue
		}
		// Poll a little before sleeping: a guest that must kick a sleeping
		// device pays a system call or an exit, far more than this
		// thread's polling. Between looks the thread yields the core to
		// the host's other threads with sched_yield, not runtime.Gosched,
		// which on a locked thread hands the goroutine to another thread
		// and back.
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) < spin {
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		idleSince = time.Time{}
		// Idle: ask the guest for a kick, look once more, then sleep.
		atomic.StoreUint32(d.word(abi.RingTxNeedKick), 1)
		if !txBlocked && atomic.LoadUint32(d.word(abi.RingTxHead)) != atomic.LoadUint32(d.word(abi.RingTxTail)) {
			atomic.StoreUint32(d.word(abi.RingTxNeedKick), 0)
			continue
		}
		fds := []unix.PollFd{{Fd: int32(d.Kick), Events: unix.POLLIN}, {Fd: int32(d.Stop), Events: unix.POLLIN}}
		// The host side: frames to read unless the guest's ring is full,
		// and room to write if it had none (else this thread would spin,
		// and never see Stop, while the host side stays full).
		var hostEv int16
		if !rxFull {
			hostEv |= unix.POLLIN
		}
		if txBlocked {
			hostEv |= unix.POLLOUT
		}
		if hostEv != 0 {
			fds = append(fds, unix.PollFd{Fd: int32(d.Host), Events: hostEv})
		}
		timeout := -1
		if rxFull {
			timeout = 1 // the guest frees slots without telling: look again soon
		}
		unix.Poll(fds, timeout)
		atomic.StoreUint32(d.word(abi.RingTxNeedKick), 0)
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents != 0 {
			d.CountKicks()
		}
	}
}

// CountKicks takes the doorbell's count of kicks from its eventfd.
func (d *Device) CountKicks() {
	var b [8]byte
	if n, _ := unix.Read(d.Kick, b[:]); n == 8 {
		d.Kicks.Add(binary.LittleEndian.Uint64(b[:]))
	}
}

// moveTx sends the frames the guest queued; it reports progress, and
// whether the host side had no room for the next one.
func (d *Device) moveTx() (moved, blocked bool) {
	tail := atomic.LoadUint32(d.word(abi.RingTxTail))
	head := atomic.LoadUint32(d.word(abi.RingTxHead))
	if head-tail > abi.RingSlots {
		// A corrupt head from the guest: take what the ring can hold.
		head = tail + abi.RingSlots
	}
	for ; tail != head; tail++ {
		slot := d.Ring[abi.RingTx+int(tail%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
		n := int(binary.LittleEndian.Uint32(slot))
		if n < 14 || n > abi.RingMaxFrame {
			d.Dropped.Add(1)
		} else if _, err := unix.Write(d.Host, slot[abi.RingSlotData:abi.RingSlotData+n]); err == unix.EAGAIN {
			return moved, true // the host side is full: try again when it has room
		} else if err != nil {
			d.Dropped.Add(1)
		} else {
			d.TxFrames.Add(1)
		}
		moved = true
		atomic.StoreUint32(d.word(abi.RingTxTail), tail+1)
	}
	return moved, false
}

// moveRx queues frames from the host for the guest, and notifies the
// guest if it sleeps; it reports progress and whether the ring is full.
func (d *Device) moveRx(buf []byte) (moved, full bool) {
	head := atomic.LoadUint32(d.word(abi.RingRxHead))
	for {
		if head-atomic.LoadUint32(d.word(abi.RingRxTail)) >= abi.RingSlots {
			full = true
			break
		}
		n, err := unix.Read(d.Host, buf)
		if err != nil || n == 0 {
			break
		}
		if n < 14 || n > abi.RingMaxFrame {
			d.Dropped.Add(1)
			continue
		}
		slot := d.Ring[abi.RingRx+int(head%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
		binary.LittleEndian.PutUint32(slot, uint32(n))
		copy(slot[abi.RingSlotData:], buf[:n])
		head++
		atomic.StoreUint32(d.word(abi.RingRxHead), head)
		d.RxFrames.Add(1)
		moved = true
	}
	if moved && atomic.LoadUint32(d.word(abi.RingRxNeedKick)) != 0 {
		atomic.StoreUint32(d.word(abi.RingRxNeedKick), 0)
		signal(d.Notify)
	}
	return moved, full
}

// Wake rings the device's doorbell for the guest: what a guest's kick
// does, for a kick that reached the host some other way (hvt: a doorbell
// store before KVM answered it itself).
func (d *Device) Wake() { signal(d.Kick) }

// signal adds one to an eventfd.
func signal(fd int) {
	one := [8]byte{1}
	unix.Write(fd, one[:])
}
