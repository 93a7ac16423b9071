package netstack

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// wire records what the coalescer sends, as "port:flags:ack" strings.
type wire struct {
	mu   sync.Mutex
	sent []string
}

func (w *wire) send(pkts []*stack.PacketBuffer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range pkts {
		th := header.TCP(p.TransportHeader().Slice())
		w.sent = append(w.sent, fmt.Sprintf("%d:%s:%d", th.SourcePort(), strings.ReplaceAll(th.Flags().String(), " ", ""), th.AckNumber()))
	}
}

func (w *wire) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.sent, " ")
	w.sent = nil
	return s
}

// segment builds an outbound IPv4 TCP segment as the stack hands it to the
// link.
func tcpSegment(port uint16, flags header.TCPFlags, ack uint32, data string, opts []byte) *stack.PacketBuffer {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv4MinimumSize + header.TCPMinimumSize + len(opts),
		Payload:            buffer.MakeWithData([]byte(data)),
	})
	th := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + len(opts)))
	th.Encode(&header.TCPFields{SrcPort: port, DstPort: 50000, SeqNum: 1, AckNum: ack,
		DataOffset: uint8(header.TCPMinimumSize + len(opts)), Flags: flags, WindowSize: 1000})
	copy(th[header.TCPMinimumSize:], opts)
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1})})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	return pkt
}

// write hands the coalescer one segment and drops the stack's reference,
// as the stack does.
func write(c *ackCoalescer, port uint16, flags header.TCPFlags, ack uint32, data string, opts []byte) {
	p := tcpSegment(port, flags, ack, data, opts)
	c.write([]*stack.PacketBuffer{p})
	p.DecRef()
}

const (
	a  = header.TCPFlagAck
	pa = header.TCPFlagPsh | header.TCPFlagAck
	fa = header.TCPFlagFin | header.TCPFlagAck
)

func TestACKCoalescing(t *testing.T) {
	sack := []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionSACK, 10, 0, 0, 0, 5, 0, 0, 0, 9}
	steps := []struct {
		name  string
		run   func(c *ackCoalescer)
		want  string // sent by the step
		flush string // sent by a flush after it
	}{
		{"a reply carries the held ACK", func(c *ackCoalescer) {
			write(c, 1, a, 100, "", nil)
			write(c, 1, pa, 100, "reply", nil)
		}, "1:PA:100", ""},
		{"an ACK with nothing after it goes at the flush", func(c *ackCoalescer) {
			write(c, 1, a, 200, "", nil)
		}, "", "1:A:200"},
		{"a duplicate ACK goes at once", func(c *ackCoalescer) {
			write(c, 1, a, 200, "", nil)
		}, "1:A:200", ""},
		{"SACK blocks go at once", func(c *ackCoalescer) {
			write(c, 1, a, 300, "", sack)
		}, "1:A:300", ""},
		{"a later pure ACK sends the held one first", func(c *ackCoalescer) {
			write(c, 1, a, 400, "", nil)
			write(c, 1, a, 500, "", nil)
		}, "1:A:400", "1:A:500"},
		{"connections are apart", func(c *ackCoalescer) {
			write(c, 1, a, 600, "", nil)
			write(c, 2, pa, 10, "other", nil)
		}, "2:PA:10", "1:A:600"},
		{"a segment acknowledging less keeps the order", func(c *ackCoalescer) {
			write(c, 1, a, 800, "", nil)
			write(c, 1, pa, 700, "late", nil)
		}, "1:A:800 1:PA:700", ""},
		{"a FIN carries the held ACK", func(c *ackCoalescer) {
			write(c, 1, a, 900, "", nil)
			write(c, 1, fa, 900, "", nil)
		}, "1:FA:900", ""},
		{"after a FIN the connection is forgotten", func(c *ackCoalescer) {
			write(c, 1, a, 901, "", nil)
		}, "", "1:A:901"},
	}
	w := &wire{}
	c := newACKCoalescer(w.send)
	coalesced := 0
	for _, s := range steps {
		s.run(c)
		if got := w.take(); got != s.want {
			t.Errorf("%s: sent %q, want %q", s.name, got, s.want)
		}
		c.flush()
		if got := w.take(); got != s.flush {
			t.Errorf("%s: flush sent %q, want %q", s.name, got, s.flush)
		}
	}
	if coalesced = int(c.coalesced.Load()); coalesced != 2 {
		t.Errorf("coalesced %d ACKs, want 2", coalesced)
	}
}

// TestACKFlushLoop checks that a held ACK with no reply after it leaves by
// itself.
func TestACKFlushLoop(t *testing.T) {
	w := &wire{}
	c := newACKCoalescer(w.send)
	stop := make(chan struct{})
	defer close(stop)
	go c.flushLoop(stop)
	write(c, 1, a, 100, "", nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := w.take()
		if got == "1:A:100" {
			return
		}
		if got != "" || time.Now().After(deadline) {
			t.Fatalf("sent %q, want the held ACK", got)
		}
		time.Sleep(time.Millisecond)
	}
}
