package netstack

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"

	"github.com/moteos/mote/abi"
)

// fakeTender plays the tender's side of a NIC's rings in host memory.
type fakeTender struct {
	t      *testing.T
	mem    []uint64 // the ring region, 8-byte aligned
	ring   []byte
	notify int
	bell   uint32
	r      *ringNIC
}

func newFakeTender(t *testing.T) *fakeTender {
	f := &fakeTender{t: t, mem: make([]uint64, abi.RingSize/8)}
	f.ring = unsafe.Slice((*byte)(unsafe.Pointer(&f.mem[0])), abi.RingSize)
	var err error
	if f.notify, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	n := abi.NIC{Name: "test0", MTU: 1500, FD: f.notify,
		Ring: uint64(uintptr(unsafe.Pointer(&f.mem[0]))), Kick: uint64(uintptr(unsafe.Pointer(&f.bell)))}
	if f.r, err = newRingNIC(n, channel.New(1, 1500, "")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.r.notify.Close() })
	return f
}

func (f *fakeTender) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&f.ring[off])) }

// put queues a 60-byte frame for the guest without notifying it.
func (f *fakeTender) put() {
	head := atomic.LoadUint32(f.word(abi.RingRxHead))
	slot := f.ring[abi.RingRx+int(head%abi.RingSlots)*abi.RingSlotSize:]
	binary.LittleEndian.PutUint32(slot, 60)
	atomic.StoreUint32(f.word(abi.RingRxHead), head+1)
}

// notifyIfAsked is what the tender does after queuing frames.
func (f *fakeTender) notifyIfAsked() {
	if atomic.LoadUint32(f.word(abi.RingRxNeedKick)) != 0 {
		atomic.StoreUint32(f.word(abi.RingRxNeedKick), 0)
		f.signal()
	}
}

func (f *fakeTender) signal() {
	var one [8]byte
	one[0] = 1
	unix.Write(f.notify, one[:])
}

func (f *fakeTender) waitFor(what string, cond func() bool) {
	f.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s (rx %d, NeedKick %d)", what, f.r.rxFrames.Load(), atomic.LoadUint32(f.word(abi.RingRxNeedKick)))
		}
	}
}

// A late notification — from a tender that saw the guest's previous
// request to be woken and cleared NeedKick after the guest had made a new
// one — must not leave the guest asleep without a request: the next frame
// would never be announced. (It wedged examples/kv on hvt a few times in a
// hundred runs.)
func TestRingLateNotificationKeepsRequest(t *testing.T) {
	f := newFakeTender(t)
	go f.r.readLoop()
	asleep := func() bool { return atomic.LoadUint32(f.word(abi.RingRxNeedKick)) == 1 }

	f.waitFor("the guest to sleep", asleep)
	f.put()
	f.notifyIfAsked()
	f.waitFor("the first frame", func() bool { return f.r.rxFrames.Load() == 1 })
	f.waitFor("the guest to sleep again", asleep)

	// The late notification: NeedKick cleared and the eventfd written for
	// a request the guest already saw served.
	atomic.StoreUint32(f.word(abi.RingRxNeedKick), 0)
	f.signal()
	f.waitFor("the guest to ask again", asleep)

	f.put()
	f.notifyIfAsked()
	f.waitFor("the second frame", func() bool { return f.r.rxFrames.Load() == 2 })
}
