package netstack

import (
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Errno is the Linux errno for a netstack error, as a socket's system call
// would return it.
func Errno(e tcpip.Error) syscall.Errno {
	switch e.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrPortInUse, *tcpip.ErrDuplicateAddress:
		return syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrNetworkUnreachable:
		return syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable, *tcpip.ErrHostDown:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrClosedForReceive, *tcpip.ErrNotConnected:
		return syscall.ENOTCONN
	case *tcpip.ErrAlreadyConnected:
		return syscall.EISCONN
	case *tcpip.ErrAlreadyConnecting:
		return syscall.EALREADY
	case *tcpip.ErrWouldBlock:
		return syscall.EAGAIN
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrNoBufferSpace:
		return syscall.ENOBUFS
	case *tcpip.ErrAddressFamilyNotSupported:
		return syscall.EAFNOSUPPORT
	case *tcpip.ErrNotSupported, *tcpip.ErrUnknownProtocolOption:
		return syscall.EOPNOTSUPP
	case *tcpip.ErrDestinationRequired:
		return syscall.EDESTADDRREQ
	case *tcpip.ErrBroadcastDisabled, *tcpip.ErrNotPermitted:
		return syscall.EACCES
	}
	return syscall.EINVAL
}

// errnoByText maps the text gonet puts in its errors back to the errno:
// gonet keeps only a netstack error's String().
var errnoByText = func() map[string]syscall.Errno {
	m := map[string]syscall.Errno{}
	for _, e := range []tcpip.Error{
		&tcpip.ErrConnectionRefused{}, &tcpip.ErrConnectionReset{}, &tcpip.ErrConnectionAborted{},
		&tcpip.ErrTimeout{}, &tcpip.ErrNetworkUnreachable{},
		&tcpip.ErrHostUnreachable{}, &tcpip.ErrClosedForSend{}, &tcpip.ErrClosedForReceive{},
		&tcpip.ErrNotConnected{}, &tcpip.ErrMessageTooLong{}, &tcpip.ErrNoBufferSpace{},
		&tcpip.ErrDestinationRequired{}, &tcpip.ErrBroadcastDisabled{},
	} {
		m[e.String()] = Errno(e)
	}
	return m
}()
