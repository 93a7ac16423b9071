package netstack

import (
	"runtime"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ACK coalescing.
//
// netstack acknowledges every batch of segments it takes in at once, with
// a segment of its own; Linux instead delays the ACK so that the reply the
// application writes next carries it. For request-response traffic that
// is one frame in two the guest sends, each costing the guest a copy (and
// on spt a system call through the filter, which runs the host's TCP
// receive path). The coalescer does the same at the link, under the stack:
// it holds a pure ACK that acknowledges new data until the goroutines
// runnable now have run, and drops it if a segment of the same connection
// with data or flags acknowledges as much meanwhile; otherwise it sends it
// then. An ACK is never lost and never reordered behind a segment of its
// connection, only late by a few passes of the run queue, which is what
// netstack's own processing of a segment already waits for.
//
// What passes at once, as Linux sends it at once: ACKs carrying SACK
// blocks (they report loss) and ACKs repeating the last acknowledgement
// sent on their connection (duplicate ACKs and window updates). A held
// ACK is not merged into a later pure ACK either, so a bulk receiver
// acknowledges as often as netstack does.

// flow identifies a TCP connection by its outbound addresses and ports.
type flow struct {
	src, dst     tcpip.Address
	sport, dport uint16
}

type heldACK struct {
	pkt *stack.PacketBuffer
	ack seqnum.Value
}

// maxFlows bounds the acknowledgements remembered; forgetting them only
// lets one duplicate ACK per connection wait a pass.
const maxFlows = 4096

// maxYields bounds the passes of the run queue a held ACK waits.
const maxYields = 8

type ackCoalescer struct {
	send func([]*stack.PacketBuffer)

	mu   sync.Mutex // everything below, and the order of sends
	held map[flow]heldACK
	last map[flow]seqnum.Value // the acknowledgement last sent on each connection
	out  []*stack.PacketBuffer
	done []*stack.PacketBuffer

	wake      chan struct{}
	coalesced atomic.Uint64 // ACKs a later segment carried instead
}

func newACKCoalescer(send func([]*stack.PacketBuffer)) *ackCoalescer {
	return &ackCoalescer{send: send, held: map[flow]heldACK{}, last: map[flow]seqnum.Value{}, wake: make(chan struct{}, 1)}
}

// write sends pkts, holding back pure ACKs; the stack keeps its references.
func (c *ackCoalescer) write(pkts []*stack.PacketBuffer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out, c.done = c.out[:0], c.done[:0]
	hold := false
	for _, pkt := range pkts {
		s, ok := classify(pkt)
		if !ok {
			c.out = append(c.out, pkt)
			continue
		}
		if h, found := c.held[s.flow]; found {
			delete(c.held, s.flow)
			c.done = append(c.done, h.pkt)
			if !s.pure && s.flags&header.TCPFlagAck != 0 && !s.ack.LessThan(h.ack) {
				c.coalesced.Add(1)
			} else {
				c.emit(h.pkt, s.flow, h.ack, header.TCPFlagAck)
			}
		}
		if last, seen := c.last[s.flow]; s.pure && (!seen || last.LessThan(s.ack)) {
			c.held[s.flow] = heldACK{pkt.IncRef(), s.ack}
			hold = true
			continue
		}
		c.emit(pkt, s.flow, s.ack, s.flags)
	}
	if len(c.out) > 0 {
		c.send(c.out)
	}
	for _, p := range c.done {
		p.DecRef()
	}
	clear(c.out)
	clear(c.done)
	if hold {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// emit queues a TCP segment to send and remembers its acknowledgement.
func (c *ackCoalescer) emit(pkt *stack.PacketBuffer, f flow, ack seqnum.Value, flags header.TCPFlags) {
	c.out = append(c.out, pkt)
	switch {
	case flags&(header.TCPFlagFin|header.TCPFlagRst) != 0:
		delete(c.last, f)
	case flags&header.TCPFlagAck != 0:
		if len(c.last) >= maxFlows {
			clear(c.last)
		}
		c.last[f] = ack
	}
}

// flushLoop sends held ACKs once the goroutines that were runnable when
// they were held have had their turn: a yield puts this goroutine behind
// them, among them the readers the ACKed data woke, whose replies may
// carry the ACKs instead. It yields again while replies keep carrying
// held ACKs, since the scheduler may run it before the others are done.
func (c *ackCoalescer) flushLoop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		for range maxYields {
			n := c.coalesced.Load()
			runtime.Gosched()
			if c.coalesced.Load() == n {
				break
			}
		}
		c.flush()
	}
}

func (c *ackCoalescer) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 {
		return
	}
	c.out = c.out[:0]
	for f, h := range c.held {
		c.emit(h.pkt, f, h.ack, header.TCPFlagAck)
		delete(c.held, f)
	}
	c.send(c.out)
	for _, p := range c.out {
		p.DecRef()
	}
	clear(c.out)
}

// segment is what the coalescer reads of an outbound TCP segment.
type segment struct {
	flow
	ack   seqnum.Value
	flags header.TCPFlags
	pure  bool // no data, no flag but ACK, no SACK blocks
}

// classify reads pkt if it is a TCP segment.
func classify(pkt *stack.PacketBuffer) (s segment, ok bool) {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return s, false
	}
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber, header.IPv6ProtocolNumber:
	default:
		return s, false
	}
	th := header.TCP(pkt.TransportHeader().Slice())
	if len(th) < header.TCPMinimumSize || int(th.DataOffset()) > len(th) || th.DataOffset() < header.TCPMinimumSize {
		return s, false
	}
	nh := pkt.Network()
	s.flow = flow{nh.SourceAddress(), nh.DestinationAddress(), th.SourcePort(), th.DestinationPort()}
	s.ack, s.flags = seqnum.Value(th.AckNumber()), th.Flags()
	s.pure = s.flags == header.TCPFlagAck && pkt.Data().Size() == 0 && !hasSACK(th.Options())
	return s, true
}

// hasSACK reports whether TCP options carry SACK blocks (kind 5).
func hasSACK(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case header.TCPOptionEOL:
			return false
		case header.TCPOptionNOP:
			i++
			continue
		case header.TCPOptionSACK:
			return true
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		i += int(opts[i+1])
	}
	return false
}
