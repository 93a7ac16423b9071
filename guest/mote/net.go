package mote

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/moteos/mote/guest/netstack"
)

// errNoNIC is what Listen, ListenPacket and Dial say in a unikernel run
// without --net: a program written for Mote serves the outside, and a
// listener nobody can reach is more likely a missing flag than a wish.
// (A program's own net.Listen gets loopback, as in a namespace without
// interfaces.)
var errNoNIC = errors.New("mote: this unikernel has no network interface (mote run --net)")

// loopback reports whether address (host:port) names a loopback host,
// which needs no NIC.
func loopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// noNIC reports whether the unikernel was started without a NIC.
func noNIC() bool {
	m, err := Manifest()
	return err == nil && len(m.Net) == 0
}

var (
	stackOnce sync.Once
	theStack  *netstack.Stack
	stackErr  error
)

// GuestStack returns the in-guest TCP/IP stack, started on first use: the
// manifest's NICs and loopback (loopback alone without a NIC). It is for
// guest/stdnet; programs use Listen, Dial and the standard library.
func GuestStack() (*netstack.Stack, error) {
	stackOnce.Do(func() {
		m, err := Manifest()
		if err != nil {
			stackErr = err
			return
		}
		// Held until the first listener or dial is in place: a request
		// that came while the unikernel started is served, not reset.
		theStack, stackErr = netstack.New(m.Net, netstack.Options{Hold: true})
	})
	return theStack, stackErr
}

// Listen announces on a TCP address ("tcp", "tcp4", "tcp6"), as
// net.Listen does.
func Listen(network, address string) (net.Listener, error) {
	uk, err := Unikernel()
	if err != nil {
		return nil, err
	}
	if !uk {
		return net.Listen(network, address)
	}
	if noNIC() && !loopback(address) {
		return nil, errNoNIC
	}
	st, err := GuestStack()
	if err != nil {
		return nil, err
	}
	return st.Listen(network, address)
}

// ListenPacket opens a UDP socket ("udp", "udp4", "udp6"), as
// net.ListenPacket does.
func ListenPacket(network, address string) (net.PacketConn, error) {
	uk, err := Unikernel()
	if err != nil {
		return nil, err
	}
	if !uk {
		return net.ListenPacket(network, address)
	}
	if noNIC() && !loopback(address) {
		return nil, errNoNIC
	}
	st, err := GuestStack()
	if err != nil {
		return nil, err
	}
	return st.ListenPacket(network, address)
}

// Dial connects to an address over TCP or UDP, as net.Dial does.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	uk, err := Unikernel()
	if err != nil {
		return nil, err
	}
	if !uk {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	if noNIC() && !loopback(address) {
		return nil, errNoNIC
	}
	st, err := GuestStack()
	if err != nil {
		return nil, err
	}
	InstallRoots() // before any TLS client can verify a server
	return st.DialContext(ctx, network, address)
}

// Resolver returns the DNS resolver for the program's network: the host's
// on unix, one that asks the manifest's DNS servers over the in-guest stack
// otherwise.
func Resolver() *net.Resolver {
	uk, err := Unikernel()
	if err != nil || !uk {
		return net.DefaultResolver
	}
	st, err := GuestStack()
	if err != nil {
		return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) { return nil, err }}
	}
	return st.Resolver()
}

// HTTPClient returns an HTTP client that dials through the program's
// network (http.DefaultClient works as well on every target).
func HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       DialContext,
		Proxy:             http.ProxyFromEnvironment,
		ForceAttemptHTTP2: true,
	}}
}

func init() {
	// In a unikernel, point the standard library's defaults at the
	// in-guest stack: the host's sockets do not exist there.
	if uk, err := Unikernel(); err != nil || !uk {
		return
	}
	net.DefaultResolver.PreferGo = true
	net.DefaultResolver.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		st, err := GuestStack()
		if err != nil {
			return nil, err
		}
		return st.Resolver().Dial(ctx, network, address)
	}
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.DialContext = DialContext
	}
}
