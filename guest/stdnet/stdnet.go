package stdnet

import (
	"context"
	"net"
	"os"
	"syscall"
	_ "unsafe" // go:linkname

	"github.com/moteos/mote/guest/mote"
	"github.com/moteos/mote/guest/netstack"
)

// setSocketHook is net.moteSetSocket, which exists only in the overlay
// that mote build gives the net package (host/inject/net.go). A program
// built without that overlay does not link.
//
//go:linkname setSocketHook net.moteSetSocket
func setSocketHook(func(ctx context.Context, network string, family, sotype int, ipv6only bool, laddr, raddr net.Addr) (any, error))

// setInterfacesHook is net.moteSetInterfaces, from the same overlay.
//
//go:linkname setInterfacesHook net.moteSetInterfaces
func setInterfacesHook(func() ([]net.Interface, map[int][]net.Addr))

func init() {
	if uk, err := mote.Unikernel(); err != nil || !uk {
		return // unix: the host's sockets
	}
	setSocketHook(socket)
	setInterfacesHook(interfaces)
}

// interfaces is net.Interfaces and net.InterfaceAddrs in a unikernel: the
// guest stack's NICs and loopback.
func interfaces() ([]net.Interface, map[int][]net.Addr) {
	st, err := mote.GuestStack()
	if err != nil {
		return nil, nil
	}
	return st.Interfaces()
}

// socket is net's hook: it opens an internet socket in the guest's stack
// and returns what net's netFD delegates to (a *netstack.Stream, a listener
// or a *netstack.Packet), or nil, nil for a socket it does not serve (net then makes the
// system call, which the Mote ABI refuses). As net's own socket() does, it
// listens when only laddr is set and dials otherwise.
func socket(ctx context.Context, network string, family, sotype int, ipv6only bool, laddr, raddr net.Addr) (any, error) {
	if family != syscall.AF_INET && family != syscall.AF_INET6 {
		return nil, nil
	}
	st, err := mote.GuestStack()
	if err != nil {
		return nil, err
	}
	v6 := family == syscall.AF_INET6
	switch sotype {
	case syscall.SOCK_STREAM:
		if raddr == nil {
			if laddr == nil {
				return nil, syscall.EINVAL
			}
			l, err := st.ListenTCP(laddr.(*net.TCPAddr), v6, ipv6only)
			if err != nil {
				return nil, syscallErr("bind", err)
			}
			return listener{l}, nil
		}
		mote.InstallRoots() // before any TLS client can verify a server
		var la *net.TCPAddr
		if laddr != nil {
			la = laddr.(*net.TCPAddr)
		}
		c, err := st.DialTCP(ctx, la, raddr.(*net.TCPAddr), v6, ipv6only)
		if err != nil {
			return nil, syscallErr("connect", err)
		}
		return c, nil
	case syscall.SOCK_DGRAM:
		var la, ra *net.UDPAddr
		if laddr != nil {
			la = laddr.(*net.UDPAddr)
		}
		if raddr != nil {
			ra = raddr.(*net.UDPAddr)
		}
		c, err := st.OpenUDP(la, ra, v6, ipv6only)
		if err != nil {
			return nil, syscallErr("bind", err)
		}
		return c, nil
	}
	return nil, nil // raw sockets: the Mote ABI refuses them
}

// listener gives net the Accept it calls: the connection as any, which
// net checks for the methods it needs.
type listener struct{ *netstack.Listener }

func (l listener) Accept() (any, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// syscallErr names the system call an errno came from, as net's errors on
// Linux do ("connect: connection refused"); other errors (a context's)
// pass unchanged.
func syscallErr(call string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		return os.NewSyscallError(call, errno)
	}
	return err
}
