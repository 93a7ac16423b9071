package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/moteos/mote/abi"
)

// Options bound the stack's memory and say when it starts reading.
type Options struct {
	// TCPBufferMax caps each TCP socket's send and receive buffer (0: 1 MiB).
	TCPBufferMax int
	// Hold leaves the NICs unread until the stack's first Listen,
	// ListenPacket or dial, so that frames which arrived while the program
	// started — a client's SYN to the port it is about to listen on, the
	// request that cold-started a unikernel — meet the listener instead of
	// a reset.
	Hold bool
}

// Stack is a running TCP/IP stack over one or more NICs.
type Stack struct {
	s     *stack.Stack
	nics  []*nic
	rings []*ringNIC
	dns   []netip.Addr
	ctx   context.Context
	stop  context.CancelFunc
	read  sync.Once // starts the NICs' read loops
}

// New starts a stack on the NICs of a manifest, and a loopback interface.
// Each NIC's FD must be a descriptor carrying whole Ethernet frames. With
// no NIC the stack has loopback only, as a network namespace without
// interfaces does.
func New(nics []abi.NIC, opt Options) (*Stack, error) {
	if opt.TCPBufferMax <= 0 {
		opt.TCPBufferMax = 1 << 20
	}
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocol,
			ipv6.NewProtocolWithOptions(ipv6.Options{AutoGenLinkLocal: true}),
			arp.NewProtocol,
		},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
		Clock:              newClock(),
	})
	bufs := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: min(64<<10, opt.TCPBufferMax), Max: opt.TCPBufferMax}
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &bufs); err != nil {
		return nil, fmt.Errorf("netstack: TCP send buffers: %v", err)
	}
	rbufs := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: min(64<<10, opt.TCPBufferMax), Max: opt.TCPBufferMax}
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &rbufs); err != nil {
		return nil, fmt.Errorf("netstack: TCP receive buffers: %v", err)
	}
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)

	ctx, cancel := context.WithCancel(context.Background())
	st := &Stack{s: s, ctx: ctx, stop: cancel}
	var routes []tcpip.Route
	for i, n := range nics {
		id := tcpip.NICID(i + 1)
		mac, err := net.ParseMAC(n.MAC)
		if err != nil || len(mac) != 6 {
			cancel()
			return nil, fmt.Errorf("netstack: nic %s: bad MAC %q", n.Name, n.MAC)
		}
		if n.MTU < 576 {
			cancel()
			return nil, fmt.Errorf("netstack: nic %s: MTU %d", n.Name, n.MTU)
		}
		// The channel endpoint carries only inbound frames; outbound ones go
		// to the device through the ACK coalescer (link.go, acks.go).
		ch := channel.New(1, uint32(n.MTU), tcpip.LinkAddress(mac))
		var acks *ackCoalescer
		if n.Ring != 0 || n.RingFD != 0 {
			r, err := newRingNIC(n, ch)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: %v", n.Name, err)
			}
			st.rings = append(st.rings, r)
			acks = newACKCoalescer(r.send)
			r.acks = acks
		} else {
			// Non-blocking, so os.NewFile parks reads in the netpoller.
			if err := syscall.SetNonblock(n.FD, true); err != nil {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: descriptor %d: %v", n.Name, n.FD, err)
			}
			f := os.NewFile(uintptr(n.FD), n.Name)
			raw, err := f.SyscallConn()
			if err != nil {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: %v", n.Name, err)
			}
			l := &nic{name: n.Name, f: f, raw: raw, ch: ch, mtu: n.MTU}
			st.nics = append(st.nics, l)
			acks = newACKCoalescer(l.send)
			l.acks = acks
		}
		go acks.flushLoop(ctx.Done()) // ends when the stack stops, or New fails
		if err := s.CreateNICWithOptions(id, ethernet.New(&link{ch, acks.write}), stack.NICOptions{Name: n.Name}); err != nil {
			cancel()
			return nil, fmt.Errorf("netstack: nic %s: %v", n.Name, err)
		}
		if n.Addr != "" {
			pfx, err := netip.ParsePrefix(n.Addr)
			if err != nil || !pfx.Addr().Is4() {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: bad address %q", n.Name, n.Addr)
			}
			pa := tcpip.ProtocolAddress{
				Protocol:          ipv4.ProtocolNumber,
				AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(pfx.Addr().As4()), PrefixLen: pfx.Bits()},
			}
			if err := s.AddProtocolAddress(id, pa, stack.AddressProperties{}); err != nil {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: %v", n.Name, err)
			}
			routes = append(routes, tcpip.Route{Destination: pa.AddressWithPrefix.Subnet(), NIC: id})
		}
		if n.Gateway != "" {
			gw, err := netip.ParseAddr(n.Gateway)
			if err != nil || !gw.Is4() {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: bad gateway %q", n.Name, n.Gateway)
			}
			routes = append(routes, tcpip.Route{Destination: header4Any(), Gateway: tcpip.AddrFrom4(gw.As4()), NIC: id})
		}
		for _, d := range n.DNS {
			if a, err := netip.ParseAddr(d); err == nil {
				st.dns = append(st.dns, a)
			}
		}
		for _, nb := range n.Neighbors {
			a, err1 := netip.ParseAddr(nb.Addr)
			hw, err2 := net.ParseMAC(nb.MAC)
			if err1 != nil || err2 != nil || !a.Is4() {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: bad neighbour %s at %s", n.Name, nb.Addr, nb.MAC)
			}
			if err := s.AddStaticNeighbor(id, ipv4.ProtocolNumber, tcpip.AddrFrom4(a.As4()), tcpip.LinkAddress(hw)); err != nil {
				cancel()
				return nil, fmt.Errorf("netstack: nic %s: neighbour %s: %v", n.Name, nb.Addr, err)
			}
		}
		routes = append(routes, tcpip.Route{Destination: header6LinkLocal(), NIC: id})
	}
	lo, err := addLoopback(s, tcpip.NICID(len(nics)+1))
	if err != nil {
		cancel()
		return nil, err
	}
	s.SetRouteTable(append(lo, routes...))
	if !opt.Hold {
		st.startReading()
	}
	return st, nil
}

// addLoopback gives the stack a loopback interface with 127.0.0.1/8 and
// ::1, as every Linux network namespace has: a program talks to itself
// (an httptest server, a sidecar in the same process) without its frames
// ever reaching a NIC. It returns the interface's routes.
func addLoopback(s *stack.Stack, id tcpip.NICID) ([]tcpip.Route, error) {
	if err := s.CreateNICWithOptions(id, loopback.New(), stack.NICOptions{Name: "lo"}); err != nil {
		return nil, fmt.Errorf("netstack: loopback: %v", err)
	}
	var routes []tcpip.Route
	for _, a := range []tcpip.ProtocolAddress{
		{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4([4]byte{127, 0, 0, 1}), PrefixLen: 8}},
		{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom16([16]byte{15: 1}), PrefixLen: 128}},
	} {
		if err := s.AddProtocolAddress(id, a, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("netstack: loopback %v: %v", a.AddressWithPrefix, err)
		}
		routes = append(routes, tcpip.Route{Destination: a.AddressWithPrefix.Subnet(), NIC: id})
	}
	return routes, nil
}

// startReading starts the NICs' read loops, once.
func (st *Stack) startReading() {
	st.read.Do(func() {
		for _, l := range st.nics {
			go l.readLoop()
		}
		for _, r := range st.rings {
			go r.readLoop()
		}
	})
}

func header4Any() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	return sn
}

func header6LinkLocal() tcpip.Subnet {
	a := [16]byte{0xfe, 0x80}
	m := [16]byte{0xff, 0xc0}
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom16(a), tcpip.MaskFromBytes(m[:]))
	return sn
}

// Close stops the NIC loops and closes their descriptors.
func (st *Stack) Close() error {
	st.stop()
	for _, n := range st.nics {
		n.f.Close()
	}
	st.s.Close()
	return nil
}

// NICStats are a NIC's frame counters.
type NICStats struct {
	Name                 string
	RxFrames, TxFrames   uint64
	RxDropped, TxDropped uint64
	// ACKsCoalesced counts pure ACKs not sent because a later segment of
	// their connection carried the acknowledgement (acks.go).
	ACKsCoalesced uint64
}

// Stats reports each NIC's counters, including dropped (malformed,
// truncated or oversized) frames.
func (st *Stack) Stats() []NICStats {
	var out []NICStats
	for _, n := range st.nics {
		out = append(out, NICStats{n.name, n.rxFrames.Load(), n.txFrames.Load(), n.rxDropped.Load(), n.txDropped.Load(), n.acks.coalesced.Load()})
	}
	for _, r := range st.rings {
		out = append(out, NICStats{r.name, r.rxFrames.Load(), r.txFrames.Load(), r.rxDropped.Load(), r.txDropped.Load(), r.acks.coalesced.Load()})
	}
	return out
}

// fullAddr converts a host:port into a netstack address; an empty or
// unspecified host means any address.
func fullAddr(hostport string) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return tcpip.FullAddress{}, 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, 0, fmt.Errorf("bad port %q", port)
	}
	fa := tcpip.FullAddress{Port: uint16(p)}
	if host == "" {
		return fa, ipv4.ProtocolNumber, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fa, 0, fmt.Errorf("%q is not an IP address", host)
	}
	if ip.Is4() || ip.Is4In6() {
		if !ip.Unmap().IsUnspecified() {
			fa.Addr = tcpip.AddrFrom4(ip.Unmap().As4())
		}
		return fa, ipv4.ProtocolNumber, nil
	}
	if !ip.IsUnspecified() {
		fa.Addr = tcpip.AddrFrom16(ip.As16())
	}
	return fa, ipv6.ProtocolNumber, nil
}

func opError(op, network, addr string, err error) error {
	return &net.OpError{Op: op, Net: network, Addr: stringAddr(addr), Err: err}
}

type stringAddr string

func (a stringAddr) Network() string { return "netstack" }
func (a stringAddr) String() string  { return string(a) }

// Listen listens for TCP connections ("tcp", "tcp4", "tcp6").
func (st *Stack) Listen(network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, opError("listen", network, address, net.UnknownNetworkError(network))
	}
	fa, proto, err := fullAddr(address)
	if err != nil {
		return nil, opError("listen", network, address, err)
	}
	l, err := gonet.ListenTCP(st.s, fa, proto)
	if err != nil {
		return nil, opError("listen", network, address, err)
	}
	st.startReading()
	return l, nil
}

// ListenPacket opens a UDP socket ("udp", "udp4", "udp6").
func (st *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, opError("listen", network, address, net.UnknownNetworkError(network))
	}
	fa, proto, err := fullAddr(address)
	if err != nil {
		return nil, opError("listen", network, address, err)
	}
	c, err := gonet.DialUDP(st.s, &fa, nil, proto)
	if err != nil {
		return nil, opError("listen", network, address, err)
	}
	st.startReading()
	return c, nil
}

// DialContext connects over TCP or UDP; host names are resolved with the
// stack's resolver.
func (st *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	st.startReading()
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opError("dial", network, address, err)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "" {
		ips, err := st.Resolver().LookupNetIP(ctx, "ip4", host)
		if err != nil {
			return nil, opError("dial", network, address, err)
		}
		if len(ips) == 0 {
			return nil, opError("dial", network, address, errors.New("no address"))
		}
		address = net.JoinHostPort(ips[0].String(), port)
	}
	fa, proto, err := fullAddr(address)
	if err != nil {
		return nil, opError("dial", network, address, err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		c, err := gonet.DialContextTCP(ctx, st.s, fa, proto)
		if err != nil {
			return nil, opError("dial", network, address, err)
		}
		return c, nil
	case "udp", "udp4", "udp6":
		c, err := gonet.DialUDP(st.s, nil, &fa, proto)
		if err != nil {
			return nil, opError("dial", network, address, err)
		}
		return c, nil
	}
	return nil, opError("dial", network, address, net.UnknownNetworkError(network))
}

// Resolver returns a resolver that sends its queries over this stack to
// the manifest's DNS servers, whatever /etc/resolv.conf would say (the
// guest has none).
func (st *Stack) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			if len(st.dns) == 0 {
				return nil, &net.DNSError{Err: "no DNS server configured", IsNotFound: true}
			}
			return st.DialContext(ctx, network, net.JoinHostPort(st.dns[0].String(), "53"))
		},
	}
}
