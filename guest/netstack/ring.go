package netstack

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/moteos/mote/abi"
)

// ringNIC moves frames through the rings it shares with the host's device
// thread (abi/ring.go) — mapped into guest memory by the hvt tender, or a
// memory file from mote that it maps itself on spt: no system call per
// frame, only one to sleep when there is nothing to do, or to wake the
// device thread when that sleeps (on hvt, a doorbell exit KVM answers).
type ringNIC struct {
	name   string
	ring   []byte
	notify *os.File // the host wrote frames (we asked, with RxNeedKick)
	wait   syscall.RawConn
	kick   func() // wakes the host's device thread
	ch     *channel.Endpoint
	mtu    int
	acks   *ackCoalescer
	mu     sync.Mutex // serializes senders: the transmit ring has one producer

	rxFrames, txFrames, rxDropped, txDropped atomic.Uint64
}

// rxSpin is how long the receive loop polls an empty ring before it
// sleeps: polling costs less CPU than the exits of a sleep and a wake-up
// (about 250 µs on nested KVM), and under load the next frame comes sooner.
const rxSpin = 50 * time.Microsecond

func newRingNIC(n abi.NIC, ch *channel.Endpoint) (*ringNIC, error) {
	if err := syscall.SetNonblock(n.FD, true); err != nil {
		return nil, err
	}
	notify := os.NewFile(uintptr(n.FD), n.Name+"-notify")
	wait, err := notify.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &ringNIC{name: n.Name, notify: notify, wait: wait, ch: ch, mtu: n.MTU}
	if n.RingFD != 0 {
		// spt: the rings are a memory file shared with mote's device
		// thread, and the doorbell an eventfd.
		mem, err := syscall.Mmap(n.RingFD, 0, abi.RingSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("mapping the rings: %v", err)
		}
		r.ring = mem
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		r.kick = func() { syscall.Write(n.KickFD, one) }
		return r, nil
	}
	// hvt: the tender mapped the rings and the doorbell at these
	// addresses before the program started; they are not Go memory, and
	// the collector ignores them.
	r.ring = unsafe.Slice((*byte)(fixed(n.Ring)), abi.RingSize)
	bell := (*uint32)(fixed(n.Kick))
	r.kick = func() { ring(bell) }
	return r, nil
}

// fixed turns an address the tender gave into a pointer.
func fixed(addr uint64) unsafe.Pointer {
	p := uintptr(addr)
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// ring stores to the doorbell with a plain MOV: KVM answers the store
// in the kernel only for a simple write (an atomic exchange would read the
// doorbell first, and a read is an exit to the tender).
//
//go:noinline
func ring(bell *uint32) { *bell = 1 }

func (r *ringNIC) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.ring[off])) }

func (r *ringNIC) readLoop() {
	tail := atomic.LoadUint32(r.word(abi.RingRxTail))
	idleSince := time.Time{}
	for {
		head := atomic.LoadUint32(r.word(abi.RingRxHead))
		if head != tail {
			for ; tail != head; tail++ {
				slot := r.ring[abi.RingRx+int(tail%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
				n := int(binary.LittleEndian.Uint32(slot))
				if n < ethHeader || n > r.mtu+ethHeader+4 {
					r.rxDropped.Add(1)
					continue
				}
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
					Payload: buffer.MakeWithData(slot[abi.RingSlotData : abi.RingSlotData+n]), // copies
				})
				r.ch.InjectInbound(0, pkt)
				pkt.DecRef()
				r.rxFrames.Add(1)
			}
			atomic.StoreUint32(r.word(abi.RingRxTail), tail)
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) < rxSpin {
			runtime.Gosched()
			continue
		}
		// Sleep: ask for a notification, then look once more.
		atomic.StoreUint32(r.word(abi.RingRxNeedKick), 1)
		if atomic.LoadUint32(r.word(abi.RingRxHead)) != tail {
			atomic.StoreUint32(r.word(abi.RingRxNeedKick), 0)
			continue
		}
		// Wait for the notification without reading the eventfd: the
		// netpoller is edge-triggered and every write of the tender is an
		// edge, so the counter need not be reset — a read would be one more
		// exit per wake-up. The request is made again before every park:
		// a wake-up can be a late one, from a tender that saw an earlier
		// request and cleared NeedKick after this one was made, and parking
		// again without a request would wait for a notification that never
		// comes (the ring fills, the guest serves nothing).
		err := r.wait.Read(func(uintptr) bool {
			if atomic.LoadUint32(r.word(abi.RingRxHead)) != tail {
				return true
			}
			atomic.StoreUint32(r.word(abi.RingRxNeedKick), 1)
			return atomic.LoadUint32(r.word(abi.RingRxHead)) != tail
		})
		if err != nil {
			return
		}
		atomic.StoreUint32(r.word(abi.RingRxNeedKick), 0)
		idleSince = time.Time{}
	}
}

// send queues frames on the transmit ring from the goroutine that sends,
// then kicks the tender once if its device thread sleeps. A full ring
// waits briefly for the device thread, which drains it as fast as the host
// takes frames; if it stays full the frame is dropped and counted, and TCP
// sends it again.
func (r *ringNIC) send(pkts []*stack.PacketBuffer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	head := atomic.LoadUint32(r.word(abi.RingTxHead))
	for _, pkt := range pkts {
		if !r.room(head) {
			r.txDropped.Add(1)
			continue
		}
		slot := r.ring[abi.RingTx+int(head%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
		n := 0
		for _, s := range pkt.AsSlices() {
			if n+len(s) > abi.RingMaxFrame {
				n = abi.RingMaxFrame + 1
				break
			}
			n += copy(slot[abi.RingSlotData+n:], s)
		}
		if n > abi.RingMaxFrame {
			r.txDropped.Add(1)
			continue
		}
		binary.LittleEndian.PutUint32(slot, uint32(n))
		head++
		atomic.StoreUint32(r.word(abi.RingTxHead), head)
		r.txFrames.Add(1)
	}
	r.kickIfAsleep()
}

// room reports whether the transmit ring has a free slot at head, waiting
// up to a millisecond for one.
func (r *ringNIC) room(head uint32) bool {
	for i := 0; head-atomic.LoadUint32(r.word(abi.RingTxTail)) >= abi.RingSlots; i++ {
		if i == 50 {
			return false
		}
		r.kickIfAsleep()
		time.Sleep(20 * time.Microsecond)
	}
	return true
}

func (r *ringNIC) kickIfAsleep() {
	if atomic.LoadUint32(r.word(abi.RingTxNeedKick)) != 0 {
		atomic.StoreUint32(r.word(abi.RingTxNeedKick), 0)
		r.kick()
	}
}
