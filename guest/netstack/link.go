package netstack

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ethHeader is the Ethernet header size; a frame also may carry one VLAN tag.
const ethHeader = 14

// link is a NIC as the stack sees it: gVisor's channel endpoint for the
// inbound side and the endpoint's plumbing, but outbound frames go straight
// to the device from the goroutine that sends them, with no queue and no
// goroutine hand-off per frame (which costs a wake-up, and on hvt an exit
// when the other goroutine's thread sleeps). Only pure ACKs may wait, for
// the reply that carries them or for the coalescer's flush (acks.go).
type link struct {
	*channel.Endpoint
	send func([]*stack.PacketBuffer) // the ACK coalescer (acks.go), then the device
}

// WritePackets implements stack.LinkEndpoint. The stack keeps its
// references to the packets.
func (l *link) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	l.send(pkts.AsSlice())
	return pkts.Len(), nil
}

// nic moves frames between a NIC descriptor and the stack: a goroutine
// reads frames and injects them, and senders write theirs (send). The
// descriptor is non-blocking and reads park in Go's netpoller, so an idle
// NIC costs no CPU.
type nic struct {
	name string
	f    *os.File
	raw  syscall.RawConn // f's descriptor, for writes that never wait
	ch   *channel.Endpoint
	mtu  int
	acks *ackCoalescer

	mu    sync.Mutex // serializes senders, which share frame
	frame []byte

	rxFrames, txFrames   atomic.Uint64
	rxDropped, txDropped atomic.Uint64
}

func (n *nic) readLoop() {
	buf := make([]byte, n.mtu+ethHeader+4+1) // one byte more reveals oversized frames
	for {
		k, err := n.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			n.rxDropped.Add(1)
			continue
		}
		if k < ethHeader || k > n.mtu+ethHeader+4 {
			n.rxDropped.Add(1) // truncated or oversized: not a frame this NIC carries
			continue
		}
		n.rxFrames.Add(1)
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(buf[:k])})
		n.ch.InjectInbound(0, pkt) // the Ethernet endpoint reads the type from the header
		pkt.DecRef()
	}
}

// send writes each frame with one system call from the goroutine that
// sends, in the netpoller's non-blocking mode: a frame the device cannot
// take now (EAGAIN) is dropped and counted, as a NIC with a full queue
// does, and TCP sends it again. It writes through f's RawConn, which keeps
// the descriptor from being closed (and its number reused) meanwhile; a
// frame sent after Close is dropped.
func (n *nic) send(pkts []*stack.PacketBuffer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, pkt := range pkts {
		n.frame = n.frame[:0]
		for _, s := range pkt.AsSlices() {
			n.frame = append(n.frame, s...)
		}
		var werr error
		if err := n.raw.Write(func(fd uintptr) bool {
			_, werr = syscall.Write(int(fd), n.frame)
			return true
		}); err != nil || werr != nil {
			n.txDropped.Add(1)
			continue
		}
		n.txFrames.Add(1)
	}
}
