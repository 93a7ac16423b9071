package netstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// This file gives the stack's endpoints the shape of sockets, for the
// standard library's net package (guest/stdnet): addresses as net's
// *TCPAddr and *UDPAddr, errors as the errnos Linux would return (so that
// errors.Is(err, syscall.ECONNREFUSED) holds, and net wraps them in its
// own *OpError), deadlines as os.ErrDeadlineExceeded, and the socket
// options net sets.

// Stream is a connected TCP socket.
type Stream struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Listener is a listening TCP socket.
type Listener struct {
	v6     bool
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	closed chan struct{}
	once   sync.Once
}

// Packet is a UDP socket, connected or not.
type Packet struct {
	*gonet.UDPConn
	ep tcpip.Endpoint
}

// proto returns the network protocol of a socket of family v6 (AF_INET6)
// or not, for the address a.
func proto(v6 bool) tcpip.NetworkProtocolNumber {
	if v6 {
		return ipv6.ProtocolNumber
	}
	return ipv4.ProtocolNumber
}

// full converts an IP and port to a netstack address for a socket of the
// given family; an unspecified IP is the zero address (any). A socket of
// family AF_INET6 takes IPv4 addresses in their IPv4-mapped form.
func full(ip net.IP, port int, v6 bool) (tcpip.FullAddress, error) {
	fa := tcpip.FullAddress{Port: uint16(port)}
	if len(ip) == 0 {
		return fa, nil
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return fa, syscall.EINVAL
	}
	if a.IsUnspecified() {
		return fa, nil
	}
	switch {
	case v6:
		fa.Addr = tcpip.AddrFrom16(a.As16()) // IPv4 as ::ffff:a.b.c.d
	case a.Is4() || a.Is4In6():
		fa.Addr = tcpip.AddrFrom4(a.Unmap().As4())
	default:
		return fa, syscall.EAFNOSUPPORT
	}
	return fa, nil
}

// newEndpoint makes an endpoint of transport t (tcp or udp) for a socket
// of family v6 or not; an AF_INET6 socket takes IPv4 too unless v6only.
func (st *Stack) newEndpoint(t tcpip.TransportProtocolNumber, v6, v6only bool) (tcpip.Endpoint, *waiter.Queue, error) {
	wq := new(waiter.Queue)
	ep, err := st.s.NewEndpoint(t, proto(v6), wq)
	if err != nil {
		return nil, nil, Errno(err)
	}
	if v6 {
		ep.SocketOptions().SetV6Only(v6only)
	}
	ep.SocketOptions().SetReuseAddress(true) // as Go sets SO_REUSEADDR on listeners
	return ep, wq, nil
}

// ListenTCP opens a listening TCP socket on laddr.
func (st *Stack) ListenTCP(laddr *net.TCPAddr, v6, v6only bool) (*Listener, error) {
	fa, err := full(laddr.IP, laddr.Port, v6)
	if err != nil {
		return nil, err
	}
	ep, wq, err := st.newEndpoint(tcp.ProtocolNumber, v6, v6only)
	if err != nil {
		return nil, err
	}
	if e := ep.Bind(fa); e != nil {
		ep.Close()
		return nil, Errno(e)
	}
	if e := ep.Listen(4096); e != nil {
		ep.Close()
		return nil, Errno(e)
	}
	st.startReading()
	return &Listener{v6: v6, ep: ep, wq: wq, closed: make(chan struct{})}, nil
}

// Accept waits for and returns the next connection.
func (l *Listener) Accept() (*Stream, error) {
	we, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&we)
	defer l.wq.EventUnregister(&we)
	for {
		n, wq, err := l.ep.Accept(nil)
		if err == nil {
			return &Stream{TCPConn: gonet.NewTCPConn(wq, n), ep: n}, nil
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			return nil, Errno(err)
		}
		select {
		case <-ready:
		case <-l.closed:
			return nil, syscall.EINVAL // accept on a socket being closed
		}
	}
}

// Close closes the listener; a blocked Accept returns.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.ep.Close()
	})
	return nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr {
	a, _ := l.ep.GetLocalAddress()
	ip := net.IP(a.Addr.AsSlice())
	if len(ip) == 0 { // bound to any address: [::] or 0.0.0.0, as Linux says
		ip = net.IPv4zero
		if l.v6 {
			ip = net.IPv6unspecified
		}
	}
	return &net.TCPAddr{IP: ip, Port: int(a.Port)}
}

// DialTCP connects to raddr from laddr (nil: any).
func (st *Stack) DialTCP(ctx context.Context, laddr, raddr *net.TCPAddr, v6, v6only bool) (*Stream, error) {
	st.startReading()
	ra, err := full(raddr.IP, raddr.Port, v6)
	if err != nil {
		return nil, err
	}
	ep, wq, err := st.newEndpoint(tcp.ProtocolNumber, v6, v6only)
	if err != nil {
		return nil, err
	}
	if laddr != nil {
		la, err := full(laddr.IP, laddr.Port, v6)
		if err != nil {
			ep.Close()
			return nil, err
		}
		if e := ep.Bind(la); e != nil {
			ep.Close()
			return nil, Errno(e)
		}
	}
	we, ready := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	e := ep.Connect(ra)
	if _, ok := e.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-ready:
		}
		e = ep.LastError()
	}
	if e != nil {
		ep.Close()
		return nil, Errno(e)
	}
	return &Stream{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep}, nil
}

// OpenUDP opens a UDP socket bound to laddr (nil: any) and, if raddr is
// set, connected to it.
func (st *Stack) OpenUDP(laddr, raddr *net.UDPAddr, v6, v6only bool) (*Packet, error) {
	st.startReading()
	ep, wq, err := st.newEndpoint(udp.ProtocolNumber, v6, v6only)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Packet, error) {
		ep.Close()
		return nil, err
	}
	if laddr != nil {
		la, err := full(laddr.IP, laddr.Port, v6)
		if err != nil {
			return fail(err)
		}
		if e := ep.Bind(la); e != nil {
			return fail(Errno(e))
		}
	}
	if raddr != nil {
		ra, err := full(raddr.IP, raddr.Port, v6)
		if err != nil {
			return fail(err)
		}
		if e := ep.Connect(ra); e != nil {
			return fail(Errno(e))
		}
	}
	return &Packet{UDPConn: gonet.NewUDPConn(wq, ep), ep: ep}, nil
}

// Read, Write, ReadFrom and WriteTo return the errors net expects of a
// socket: io.EOF, os.ErrDeadlineExceeded, or an errno.

func (c *Stream) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	return n, sockErr(err)
}

func (c *Stream) Write(b []byte) (int, error) {
	n, err := c.TCPConn.Write(b)
	return n, sockErr(err)
}

func (c *Packet) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	return n, sockErr(err)
}

func (c *Packet) Write(b []byte) (int, error) {
	n, err := c.UDPConn.Write(b)
	return n, sockErr(err)
}

func (c *Packet) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.UDPConn.ReadFrom(b)
	return n, a, sockErr(err)
}

func (c *Packet) WriteTo(b []byte, a net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, a)
	return n, sockErr(err)
}

// SetsockoptInt sets the Linux socket option (level, name) that net sets
// on a TCP socket. Options the stack has no equivalent of are accepted
// and have no effect, as Linux accepts options a protocol ignores.
func (c *Stream) SetsockoptInt(level, name, v int) error {
	return setsockopt(c.ep, level, name, v)
}

// SetsockoptInt is Stream's, for UDP.
func (c *Packet) SetsockoptInt(level, name, v int) error {
	return setsockopt(c.ep, level, name, v)
}

func setsockopt(ep tcpip.Endpoint, level, name, v int) error {
	so := ep.SocketOptions()
	var e tcpip.Error
	switch {
	case level == syscall.SOL_SOCKET && name == syscall.SO_KEEPALIVE:
		so.SetKeepAlive(v != 0)
	case level == syscall.SOL_SOCKET && name == syscall.SO_RCVBUF:
		so.SetReceiveBufferSize(int64(v), true)
	case level == syscall.SOL_SOCKET && name == syscall.SO_SNDBUF:
		so.SetSendBufferSize(int64(v), true)
	case level == syscall.SOL_SOCKET && name == syscall.SO_BROADCAST:
		so.SetBroadcast(v != 0)
	case level == syscall.IPPROTO_TCP && name == syscall.TCP_NODELAY:
		so.SetDelayOption(v == 0)
	case level == syscall.IPPROTO_TCP && name == syscall.TCP_KEEPIDLE:
		o := tcpip.KeepaliveIdleOption(time.Duration(v) * time.Second)
		e = ep.SetSockOpt(&o)
	case level == syscall.IPPROTO_TCP && name == syscall.TCP_KEEPINTVL:
		o := tcpip.KeepaliveIntervalOption(time.Duration(v) * time.Second)
		e = ep.SetSockOpt(&o)
	case level == syscall.IPPROTO_TCP && name == syscall.TCP_KEEPCNT:
		e = ep.SetSockOptInt(tcpip.KeepaliveCountOption, v)
	}
	if e != nil {
		return Errno(e)
	}
	return nil
}

// SetLinger sets SO_LINGER: sec < 0 turns it off.
func (c *Stream) SetLinger(sec int) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(max(sec, 0)) * time.Second})
	return nil
}

// sockErr turns gonet's errors (a *net.OpError around a netstack error's
// text) into what a socket's system call would have returned.
func sockErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return os.ErrDeadlineExceeded
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		if errno, ok := errnoByText[oe.Err.Error()]; ok {
			return errno
		}
		return oe.Err
	}
	return err
}

// Interfaces lists the stack's interfaces as net.Interfaces does, by
// index, with each one's addresses (as *net.IPNet) keyed by index.
func (st *Stack) Interfaces() ([]net.Interface, map[int][]net.Addr) {
	info := st.s.NICInfo()
	ids := make([]int, 0, len(info))
	for id := range info {
		ids = append(ids, int(id))
	}
	slices.Sort(ids)
	var ifs []net.Interface
	addrs := map[int][]net.Addr{}
	for _, id := range ids {
		ni := info[tcpip.NICID(id)]
		ifi := net.Interface{Index: id, Name: ni.Name, MTU: int(ni.MTU)}
		if ni.Flags.Up {
			ifi.Flags |= net.FlagUp | net.FlagRunning
		}
		if ni.Flags.Loopback {
			ifi.Flags |= net.FlagLoopback
		} else {
			ifi.Flags |= net.FlagBroadcast | net.FlagMulticast
			ifi.HardwareAddr = net.HardwareAddr(ni.LinkAddress)
		}
		ifs = append(ifs, ifi)
		for _, pa := range ni.ProtocolAddresses {
			a := pa.AddressWithPrefix
			ip := net.IP(a.Address.AsSlice())
			addrs[id] = append(addrs[id], &net.IPNet{IP: ip, Mask: net.CIDRMask(a.PrefixLen, 8*len(ip))})
		}
	}
	return ifs, addrs
}
