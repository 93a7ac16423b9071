package netstack

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ethHeader is the Ethernet header size; a frame also may carry one VLAN tag.
const ethHeader = 14

// nic moves frames between a NIC descriptor and the stack: one goroutine
// reads frames and injects them, another writes what the stack sends. The
// descriptor is non-blocking and parked in Go's netpoller, so an idle NIC
// costs no CPU.
type nic struct {
	name string
	f    *os.File
	ch   *channel.Endpoint
	mtu  int

	rxFrames, txFrames   atomic.Uint64
	rxDropped, txDropped atomic.Uint64
}

func (n *nic) start(ctx context.Context) {
	go n.readLoop()
	go n.writeLoop(ctx)
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
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), buf[:k]...))})
		n.ch.InjectInbound(0, pkt) // the Ethernet endpoint reads the type from the header
		pkt.DecRef()
	}
}

func (n *nic) writeLoop(ctx context.Context) {
	frame := make([]byte, 0, n.mtu+ethHeader+4)
	for {
		pkt := n.ch.ReadContext(ctx)
		if pkt == nil {
			return
		}
		frame = frame[:0]
		for _, s := range pkt.AsSlices() {
			frame = append(frame, s...)
		}
		pkt.DecRef()
		if _, err := n.f.Write(frame); err != nil {
			n.txDropped.Add(1)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		n.txFrames.Add(1)
	}
}
