package usernet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/moteos/mote/abi"
)

// The network's fixed plan, QEMU's.
var (
	GuestAddr   = netip.MustParseAddr("10.0.2.15")
	GatewayAddr = netip.MustParseAddr("10.0.2.2")
	DNSAddr     = netip.MustParseAddr("10.0.2.3")
	prefixLen   = 24
)

const (
	mtu        = 1500
	gatewayMAC = "02:00:00:00:02:02"
	udpIdle    = 60 * time.Second
	dialLimit  = 10 * time.Second
	// maxFlows bounds the connections (TCP) and flows (UDP) open through
	// the network at once in each direction: those the guest opens, and
	// those host clients open to its published ports. Each is a host
	// socket and goroutines with their buffers, so a guest, or a client,
	// that opens them without end would otherwise take the tender's
	// descriptors and memory. Past it a TCP connection is reset (the
	// guest's) or closed (a host client's), and a UDP datagram dropped.
	maxFlows = 1024

	// A flow's buffers, in the user network's stack and in its host
	// socket (which the kernel doubles), and the copy between them, each
	// way: at most about 800 KiB a flow, 800 MiB at maxFlows. Without
	// them a connection to a peer that does not read held ~4.6 MB
	// (netstack's 1 MiB buffers and the kernel's autotuned socket
	// buffers). Smaller ones cost bulk transfers: 64 KiB and 32 KiB served
	// a download through a published port at 0.45× the rate; these, 0.85×.
	flowStackBuffer = 256 << 10
	flowHostBuffer  = 64 << 10
	flowCopyBuffer  = 16 << 10
)

// Publish maps a host address to a guest port.
type Publish struct {
	Proto     string // "tcp" or "udp"
	HostAddr  string // e.g. 127.0.0.1:8080
	GuestPort uint16
	// FD, if not 0, is a listening TCP socket this process inherited
	// (mote serve's), taken instead of binding HostAddr: connections
	// already waiting in its queue are the guest's too.
	FD int
}

// ParsePublish parses [HOSTIP:]HOSTPORT:GUESTPORT[/udp], as -p takes it;
// the host address defaults to 127.0.0.1.
//
// fd:N:GUESTPORT takes the listening TCP socket inherited as descriptor N.
func ParsePublish(s string) (Publish, error) {
	p := Publish{Proto: "tcp"}
	if rest, ok := strings.CutPrefix(s, "fd:"); ok {
		n, port, _ := strings.Cut(rest, ":")
		fd, err1 := strconv.Atoi(n)
		gp, err2 := strconv.ParseUint(port, 10, 16)
		if err1 != nil || err2 != nil || fd < 3 || gp == 0 {
			return p, fmt.Errorf("publish %q: want fd:N:GUESTPORT, N an inherited descriptor (3 or more)", s)
		}
		p.FD, p.GuestPort, p.HostAddr = fd, uint16(gp), "fd:"+n
		return p, nil
	}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		p.Proto = spec[i+1:]
		spec = spec[:i]
		if p.Proto != "tcp" && p.Proto != "udp" {
			return p, fmt.Errorf("publish %q: protocol %q is not tcp or udp", s, p.Proto)
		}
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return p, fmt.Errorf("publish %q: want [HOSTIP:]HOSTPORT:GUESTPORT", s)
	}
	gp, err := strconv.ParseUint(spec[i+1:], 10, 16)
	if err != nil || gp == 0 {
		return p, fmt.Errorf("publish %q: bad guest port", s)
	}
	p.GuestPort = uint16(gp)
	host := spec[:i]
	if !strings.Contains(host, ":") {
		host = "127.0.0.1:" + host
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return p, fmt.Errorf("publish %q: %v", s, err)
	}
	if _, err := netip.ParseAddr(h); err != nil {
		return p, fmt.Errorf("publish %q: host address %q is not an IP", s, h)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return p, fmt.Errorf("publish %q: bad host port", s)
	}
	p.HostAddr = host
	return p, nil
}

// Network is one guest's user-mode network.
type Network struct {
	maxFlows int64          // maxFlows, unless a test lowers it
	noHost   bool           // Options.NoHost
	tcpFlows atomic.Int64   // outbound connections open
	udpFlows atomic.Int64   // outbound UDP flows open
	pubFlows atomic.Int64   // connections from host clients to published TCP ports open
	pubUDP   atomic.Int64   // host clients of published UDP ports with a flow open
	lastPub  atomic.Int64   // when a published TCP connection last began or ended (Unix ns)
	pubLs    []net.Listener // the published TCP ports' listeners
	wait     time.Duration
	s        *stack.Stack
	guestFD  int
	hostFD   int
	mac      string
	resolver string // host DNS server, host:53
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	closers  []io.Closer
	ready    chan struct{} // closed when the stack runs and the ports are published, or failed
	closed   sync.Once
	err      error // why not, once ready is closed
}

// New makes the network for a guest with MAC guestMAC, publishing the
// given ports. It returns once the guest's end of the link exists; the
// network's stack and the host listeners start meanwhile, on another
// thread, so that they overlap the making of the machine. Ready waits for
// them and says whether a host address could not be bound.
func New(guestMAC string, publish []Publish, opt Options) (*Network, error) {
	return newNetwork(guestMAC, publish, opt, maxFlows)
}

// Options are a user network's settings.
type Options struct {
	// NoHost closes the gateway to the host: connections and datagrams
	// to 10.0.2.2 are refused, so the guest reaches no service listening
	// on the host's loopback (the DNS relay still answers). For guests
	// that need nothing of the host's, and for images mote did not build.
	NoHost bool
	// WaitGuest is how long a connection to a published TCP port waits
	// for the guest to listen before it is closed: a guest started by the
	// connection itself (mote serve) is still booting when it comes.
	// 0 closes it at once.
	WaitGuest time.Duration
}

// newNetwork is New with another bound on flows (tests lower it).
func newNetwork(guestMAC string, publish []Publish, opt Options, limit int64) (*Network, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("usernet: socketpair: %w", err)
	}
	for _, fd := range fds {
		// Frames queue here while the other side is busy: leave room for bursts.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{maxFlows: limit, noHost: opt.NoHost, wait: opt.WaitGuest, guestFD: fds[0], hostFD: fds[1], mac: guestMAC, ctx: ctx, cancel: cancel, ready: make(chan struct{})}
	n.lastPub.Store(time.Now().UnixNano())
	go func() {
		defer close(n.ready)
		n.resolver = hostResolver()
		if n.err = n.start(); n.err != nil {
			return
		}
		for _, p := range publish {
			if n.err = n.publish(p); n.err != nil {
				return
			}
		}
	}()
	return n, nil
}

// Ready waits until the network runs and its ports are published. The
// guest must not start before Ready returns nil: its frames would wait,
// and host clients would find its ports closed. After an error, Close the
// network.
func (n *Network) Ready() error {
	<-n.ready
	return n.err
}

// GuestFD is the guest's end of the NIC; the caller hands it to the tender,
// which owns it from then on.
func (n *Network) GuestFD() int { return n.guestFD }

// NIC describes the guest's interface for its manifest.
func (n *Network) NIC(name string) abi.NIC {
	return abi.NIC{
		Name: name, MAC: n.mac, MTU: mtu,
		Addr:    fmt.Sprintf("%s/%d", GuestAddr, prefixLen),
		Gateway: GatewayAddr.String(),
		DNS:     []string{DNSAddr.String()},
		// Both are this network's own addresses, answered with its MAC.
		Neighbors: []abi.Neighbor{{Addr: GatewayAddr.String(), MAC: gatewayMAC}, {Addr: DNSAddr.String(), MAC: gatewayMAC}},
	}
}

func (n *Network) start() error {
	mac, _ := net.ParseMAC(gatewayMAC)
	ep, err := fdbased.New(&fdbased.Options{
		FDs:            []int{n.hostFD},
		MTU:            mtu,
		EthernetHeader: true,
		Address:        tcpip.LinkAddress(mac),
	})
	if err != nil {
		return fmt.Errorf("usernet: link: %v", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	n.s = s
	for _, opt := range []tcpip.SettableTransportProtocolOption{
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: flowStackBuffer, Max: flowStackBuffer},
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: flowStackBuffer, Max: flowStackBuffer},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("usernet: TCP buffers: %v", err)
		}
	}
	if err := s.CreateNIC(1, ep); err != nil {
		return fmt.Errorf("usernet: nic: %v", err)
	}
	for _, a := range []netip.Addr{GatewayAddr, DNSAddr} {
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(a.As4()), PrefixLen: prefixLen}}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("usernet: address %v: %v", a, err)
		}
	}
	// The guest's link address is known: a static entry spares the first
	// published connection an ARP exchange with a guest that may not be
	// up yet, whose unanswered request would hold dials until the
	// resolution timer fires again.
	gmac, err := net.ParseMAC(n.mac)
	if err != nil {
		return fmt.Errorf("usernet: guest MAC %q: %v", n.mac, err)
	}
	if err := s.AddStaticNeighbor(1, ipv4.ProtocolNumber, tcpip.AddrFrom4(GuestAddr.As4()), tcpip.LinkAddress(gmac)); err != nil {
		return fmt.Errorf("usernet: guest neighbour: %v", err)
	}
	// Accept and answer for every destination: that is what a NAT does.
	s.SetPromiscuousMode(1, true)
	s.SetSpoofing(1, true)
	any, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	s.SetRouteTable([]tcpip.Route{{Destination: any, NIC: 1}})

	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcp.NewForwarder(s, 0, 256, n.forwardTCP).HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(s, n.forwardUDP).HandlePacket)
	return nil
}

// hostTarget maps where the guest wanted to go to where the host goes:
// the gateway is the host itself, the DNS address the host's resolver.
func (n *Network) hostTarget(addr tcpip.Address, port uint16, proto string) string {
	ip := netip.AddrFrom4(addr.As4())
	switch {
	case ip == GatewayAddr:
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	case ip == DNSAddr && port == 53 && n.resolver != "":
		return n.resolver
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

// refused reports whether the guest may not go to addr: the gateway, which
// is the host, with NoHost.
func (n *Network) refused(addr tcpip.Address) bool {
	return n.noHost && netip.AddrFrom4(addr.As4()) == GatewayAddr
}

func (n *Network) forwardTCP(r *tcp.ForwarderRequest) {
	if n.refused(r.ID().LocalAddress) {
		r.Complete(true) // a reset, as a closed port sends
		return
	}
	if n.tcpFlows.Add(1) > n.maxFlows {
		n.tcpFlows.Add(-1)
		r.Complete(true)
		return
	}
	done := func() { n.tcpFlows.Add(-1) }
	id := r.ID()
	target := n.hostTarget(id.LocalAddress, id.LocalPort, "tcp")
	d := net.Dialer{Timeout: dialLimit, Control: boundBuffers}
	hc, err := d.DialContext(n.ctx, "tcp", target)
	if err != nil {
		done()
		r.Complete(true) // a reset, as a refused connection would send
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		done()
		r.Complete(true)
		hc.Close()
		return
	}
	r.Complete(false)
	go func() {
		defer done()
		splice(gonet.NewTCPConn(&wq, ep), hc)
	}()
}

func (n *Network) forwardUDP(r *udp.ForwarderRequest) bool {
	if n.refused(r.ID().LocalAddress) {
		return false
	}
	if n.udpFlows.Add(1) > n.maxFlows {
		n.udpFlows.Add(-1)
		return false
	}
	id := r.ID()
	target := n.hostTarget(id.LocalAddress, id.LocalPort, "udp")
	hc, err := net.Dial("udp", target)
	if err != nil {
		n.udpFlows.Add(-1)
		return false
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		n.udpFlows.Add(-1)
		hc.Close()
		return false
	}
	gc := gonet.NewUDPConn(&wq, ep)
	go func() {
		defer n.udpFlows.Add(-1)
		relayUDP(gc, hc)
	}()
	return true
}

// relayUDP carries one UDP flow until it has been idle for udpIdle.
func relayUDP(guest, host net.Conn) {
	defer guest.Close()
	defer host.Close()
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 65536)
		for {
			src.SetReadDeadline(time.Now().Add(udpIdle))
			k, err := src.Read(buf)
			if err != nil {
				done <- struct{}{}
				return
			}
			dst.Write(buf[:k])
		}
	}
	go pump(host, guest)
	go pump(guest, host)
	<-done
}

// boundBuffers sets a host socket's buffers to flowHostBuffer before it
// connects (so that the window it offers is scaled for them).
func boundBuffers(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, flowHostBuffer); e != nil {
				serr = e
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// splice copies both ways until both directions end.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.CopyBuffer(dst, src, make([]byte, flowCopyBuffer))
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// publish listens on the host and dials each connection into the guest.
func (n *Network) publish(p Publish) error {
	guest := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(GuestAddr.As4()), Port: p.GuestPort}
	switch p.Proto {
	case "tcp":
		var l net.Listener
		var err error
		if p.FD != 0 {
			f := os.NewFile(uintptr(p.FD), p.HostAddr)
			l, err = net.FileListener(f)
			f.Close()
		} else {
			l, err = net.Listen("tcp", p.HostAddr)
		}
		if err != nil {
			return fmt.Errorf("usernet: publish %s: %w", p.HostAddr, err)
		}
		n.track(l)
		n.mu.Lock()
		n.pubLs = append(n.pubLs, l)
		n.mu.Unlock()
		go func() {
			for {
				hc, err := l.Accept()
				if err != nil {
					return
				}
				if n.pubFlows.Add(1) > n.maxFlows {
					n.pubFlows.Add(-1)
					hc.Close()
					continue
				}
				hc.(*net.TCPConn).SetReadBuffer(flowHostBuffer)
				hc.(*net.TCPConn).SetWriteBuffer(flowHostBuffer)
				n.lastPub.Store(time.Now().UnixNano())
				go func() {
					defer func() {
						n.pubFlows.Add(-1)
						n.lastPub.Store(time.Now().UnixNano())
					}()
					gc, err := n.dialGuest(guest)
					if err != nil {
						hc.Close()
						return
					}
					splice(gc, hc)
				}()
			}
		}()
	case "udp":
		pc, err := net.ListenPacket("udp", p.HostAddr)
		if err != nil {
			return fmt.Errorf("usernet: publish %s/udp: %w", p.HostAddr, err)
		}
		n.track(pc)
		go n.publishUDP(pc, guest)
	}
	return nil
}

// dialGuest connects to the guest's port, trying again while the guest
// refuses for as long as Options.WaitGuest allows.
func (n *Network) dialGuest(guest tcpip.FullAddress) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(n.ctx, max(dialLimit, n.wait))
	defer cancel()
	until := time.Now().Add(n.wait)
	for {
		gc, err := gonet.DialContextTCP(ctx, n.s, guest, ipv4.ProtocolNumber)
		if err == nil || time.Now().After(until) || ctx.Err() != nil {
			return gc, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StopAccepting closes the published TCP ports' listeners: connections
// that come after it wait in the kernel's queue of a socket someone else
// also holds (mote serve's), for the next guest, rather than reach one
// that is about to stop. Open connections are not touched.
func (n *Network) StopAccepting() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.pubLs {
		l.Close()
	}
}

// Idle is how long no connection to a published TCP port has been open:
// 0 while one is.
func (n *Network) Idle() time.Duration {
	if n.pubFlows.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, n.lastPub.Load()))
}

// publishUDP relays datagrams from host clients to the guest port, one
// guest-side socket per client (at most maxFlows at once, over all the
// published UDP ports), and the replies back.
func (n *Network) publishUDP(pc net.PacketConn, guest tcpip.FullAddress) {
	var mu sync.Mutex
	flows := map[string]net.Conn{}
	buf := make([]byte, 65536)
	for {
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		mu.Lock()
		c := flows[from.String()]
		if c == nil {
			if n.pubUDP.Add(1) > n.maxFlows {
				n.pubUDP.Add(-1)
				mu.Unlock()
				continue
			}
			gc, err := gonet.DialUDP(n.s, nil, &guest, ipv4.ProtocolNumber)
			if err != nil {
				n.pubUDP.Add(-1)
				mu.Unlock()
				continue
			}
			c = gc
			flows[from.String()] = c
			go func(from net.Addr) {
				defer func() {
					mu.Lock()
					delete(flows, from.String())
					mu.Unlock()
					c.Close()
					n.pubUDP.Add(-1)
				}()
				rb := make([]byte, 65536)
				for {
					c.SetReadDeadline(time.Now().Add(udpIdle))
					k, err := c.Read(rb)
					if err != nil {
						return
					}
					pc.WriteTo(rb[:k], from)
				}
			}(from)
		}
		mu.Unlock()
		c.Write(buf[:k])
	}
}

func (n *Network) track(c io.Closer) {
	n.mu.Lock()
	n.closers = append(n.closers, c)
	n.mu.Unlock()
}

// Close stops the network: listeners, flows and the stack. Later calls do
// nothing.
func (n *Network) Close() error {
	<-n.ready
	n.closed.Do(func() {
		n.cancel()
		n.mu.Lock()
		for _, c := range n.closers {
			c.Close()
		}
		n.mu.Unlock()
		if n.s != nil {
			// Close aborts the connections; Wait removes the NIC, which
			// stops its link's readers. Only then may hostFD go: a reader
			// still running would take the frames of whatever file gets
			// its number next (another network's, in a test).
			n.s.Close()
			n.s.Wait()
		}
		unix.Close(n.hostFD)
	})
	return nil
}

// hostResolver is the first nameserver of the host's /etc/resolv.conf.
func hostResolver() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if _, err := netip.ParseAddr(f[1]); err == nil {
				return net.JoinHostPort(f[1], "53")
			}
		}
	}
	return ""
}
