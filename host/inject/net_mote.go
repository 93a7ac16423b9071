//go:build ignore

// This file is added to the standard library's net package when mote
// builds a unikernel (host/inject); the build constraint above is removed
// then. It gives net a hook where it creates an internet socket, and the
// netFD methods that the edits in host/inject/net.go route to when a
// socket is the guest stack's (fd.ext != nil). guest/stdnet sets the hook.

package net

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"
	_ "unsafe" // go:linkname
)

// moteSocket opens a socket in a Mote unikernel's own TCP/IP stack; nil
// outside one. It returns nil, nil for a socket it does not serve.
var moteSocket func(ctx context.Context, network string, family, sotype int, ipv6only bool, laddr, raddr Addr) (any, error)

// moteSetSocket is how guest/stdnet sets moteSocket.
//
//go:linkname moteSetSocket
func moteSetSocket(f func(ctx context.Context, network string, family, sotype int, ipv6only bool, laddr, raddr Addr) (any, error)) {
	moteSocket = f
}

// moteInterfaces lists the guest stack's interfaces, with each one's
// addresses (by index); nil outside a unikernel.
var moteInterfaces func() ([]Interface, map[int][]Addr)

// moteSetInterfaces is how guest/stdnet sets moteInterfaces.
//
//go:linkname moteSetInterfaces
func moteSetInterfaces(f func() ([]Interface, map[int][]Addr)) {
	moteInterfaces = f
}

// moteHasStack reports whether sockets and interfaces are Mote's: the
// guest's stack, or the loopback network without one (loop_mote.go).
func moteHasStack() bool { return moteSocket != nil || moteLoopActive() }

// moteIfaces is moteInterfaces, or the loopback interface alone.
func moteIfaces() ([]Interface, map[int][]Addr) {
	if moteInterfaces != nil {
		return moteInterfaces()
	}
	lo := Interface{Index: 1, MTU: 65536, Name: "lo", Flags: FlagUp | FlagLoopback | FlagRunning}
	return []Interface{lo}, map[int][]Addr{1: {
		&IPNet{IP: IPv4(127, 0, 0, 1), Mask: CIDRMask(8, 32)},
		&IPNet{IP: IPv6loopback, Mask: CIDRMask(128, 128)},
	}}
}

func moteInterfaceTable(ifindex int) ([]Interface, error) {
	ifs, _ := moteIfaces()
	if ifindex == 0 {
		return ifs, nil
	}
	for _, ifi := range ifs {
		if ifi.Index == ifindex {
			return []Interface{ifi}, nil
		}
	}
	return nil, nil
}

func moteInterfaceAddrTable(ifi *Interface) ([]Addr, error) {
	ifs, addrs := moteIfaces()
	var out []Addr
	for _, i := range ifs {
		if ifi == nil || ifi.Index == i.Index {
			out = append(out, addrs[i.Index]...)
		}
	}
	return out, nil
}

// moteAddr is a as an Addr, nil for a nil address or one the hook does
// not take.
func moteAddr(a sockaddr) Addr {
	switch a := a.(type) {
	case *TCPAddr:
		if a != nil {
			return a
		}
	case *UDPAddr:
		if a != nil {
			return a
		}
	}
	return nil
}

// moteSocketFD is socket()'s first step: ok says the hook served the
// socket, and fd, err are socket()'s results.
func moteSocketFD(ctx context.Context, net string, family, sotype, proto int, ipv6only bool, laddr, raddr sockaddr) (fd *netFD, err error, ok bool) {
	if proto != 0 {
		return nil, nil, false
	}
	var ext any
	if moteSocket != nil {
		ext, err = moteSocket(ctx, net, family, sotype, ipv6only, moteAddr(laddr), moteAddr(raddr))
	} else if moteLoopActive() {
		ext, err = moteLoopSocket(ctx, family, sotype, moteAddr(laddr), moteAddr(raddr))
	} else {
		return nil, nil, false
	}
	if ext == nil && err == nil {
		return nil, nil, false
	}
	if err != nil {
		return nil, err, true
	}
	return moteNewFD(ext, family, sotype, net, moteAddr(raddr) != nil), nil, true
}

func moteNewFD(ext any, family, sotype int, net string, connected bool) *netFD {
	fd := &netFD{family: family, sotype: sotype, net: net, isConnected: connected, ext: ext}
	fd.pfd.Sysfd = -1 // no descriptor: nothing may reach one through pfd
	var laddr, raddr Addr
	if l, ok := ext.(interface{ LocalAddr() Addr }); ok {
		laddr = l.LocalAddr()
	} else if l, ok := ext.(interface{ Addr() Addr }); ok {
		laddr = l.Addr()
	}
	if r, ok := ext.(interface{ RemoteAddr() Addr }); ok && connected {
		raddr = r.RemoteAddr()
	}
	fd.setAddr(laddr, raddr)
	return fd
}

func (fd *netFD) moteAccept() (*netFD, error) {
	l, ok := fd.ext.(interface{ Accept() (any, error) })
	if !ok {
		return nil, wrapSyscallError("accept", syscall.EOPNOTSUPP)
	}
	c, err := l.Accept()
	if err != nil {
		return nil, wrapSyscallError("accept", err)
	}
	return moteNewFD(c, fd.family, fd.sotype, fd.net, true), nil
}

func (fd *netFD) moteClose() error {
	fd.moteBridgeClose()
	c, ok := fd.ext.(io.Closer)
	if !ok {
		return nil
	}
	return c.Close()
}

func (fd *netFD) moteShutdown(how int) error {
	var err error = syscall.ENOTCONN
	switch how {
	case syscall.SHUT_RD:
		if c, ok := fd.ext.(interface{ CloseRead() error }); ok {
			err = c.CloseRead()
		}
	case syscall.SHUT_WR:
		if c, ok := fd.ext.(interface{ CloseWrite() error }); ok {
			err = c.CloseWrite()
		}
	}
	return wrapSyscallError("shutdown", err)
}

func (fd *netFD) moteRead(p []byte) (int, error) {
	r, ok := fd.ext.(io.Reader)
	if !ok {
		return 0, wrapSyscallError(readSyscallName, syscall.ENOTCONN)
	}
	n, err := r.Read(p)
	return n, wrapSyscallError(readSyscallName, err)
}

func (fd *netFD) moteWrite(p []byte) (int, error) {
	w, ok := fd.ext.(io.Writer)
	if !ok {
		return 0, wrapSyscallError(writeSyscallName, syscall.ENOTCONN)
	}
	n, err := w.Write(p)
	return n, wrapSyscallError(writeSyscallName, err)
}

func (fd *netFD) moteWriteBuffers(v *Buffers) (n int64, err error) {
	for len(*v) > 0 {
		b := (*v)[0]
		nn, err := fd.moteWrite(b)
		n += int64(nn)
		v.consume(int64(nn))
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (fd *netFD) moteReadFromAddr(p []byte) (int, *UDPAddr, error) {
	r, ok := fd.ext.(interface {
		ReadFrom([]byte) (int, Addr, error)
	})
	if !ok {
		return 0, nil, wrapSyscallError(readFromSyscallName, syscall.EOPNOTSUPP)
	}
	n, a, err := r.ReadFrom(p)
	ua, _ := a.(*UDPAddr)
	return n, ua, wrapSyscallError(readFromSyscallName, err)
}

func (fd *netFD) moteReadFrom(p []byte) (int, syscall.Sockaddr, error) {
	n, a, err := fd.moteReadFromAddr(p)
	if a == nil {
		return n, nil, err
	}
	if fd.family == syscall.AF_INET {
		var sa syscall.SockaddrInet4
		moteInet4(a, &sa)
		return n, &sa, err
	}
	var sa syscall.SockaddrInet6
	moteInet6(a, &sa)
	return n, &sa, err
}

func moteInet4(a *UDPAddr, sa *syscall.SockaddrInet4) {
	*sa = syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
}

func moteInet6(a *UDPAddr, sa *syscall.SockaddrInet6) {
	*sa = syscall.SockaddrInet6{Port: a.Port}
	copy(sa.Addr[:], a.IP.To16())
}

func (fd *netFD) moteReadFromInet4(p []byte, from *syscall.SockaddrInet4) (int, error) {
	n, a, err := fd.moteReadFromAddr(p)
	if a != nil {
		moteInet4(a, from)
	}
	return n, err
}

func (fd *netFD) moteReadFromInet6(p []byte, from *syscall.SockaddrInet6) (int, error) {
	n, a, err := fd.moteReadFromAddr(p)
	if a != nil {
		moteInet6(a, from)
	}
	return n, err
}

// Control messages are not carried: a read returns none, a write with
// any is refused.

func (fd *netFD) moteReadMsg(p []byte) (n, oobn, retflags int, sa syscall.Sockaddr, err error) {
	n, sa, err = fd.moteReadFrom(p)
	return n, 0, 0, sa, err
}

func (fd *netFD) moteReadMsgInet4(p []byte, sa *syscall.SockaddrInet4) (n, oobn, retflags int, err error) {
	n, err = fd.moteReadFromInet4(p, sa)
	return n, 0, 0, err
}

func (fd *netFD) moteReadMsgInet6(p []byte, sa *syscall.SockaddrInet6) (n, oobn, retflags int, err error) {
	n, err = fd.moteReadFromInet6(p, sa)
	return n, 0, 0, err
}

func (fd *netFD) moteWriteToAddr(p []byte, a *UDPAddr) (int, error) {
	w, ok := fd.ext.(interface {
		WriteTo([]byte, Addr) (int, error)
	})
	if !ok {
		return 0, wrapSyscallError(writeToSyscallName, syscall.EOPNOTSUPP)
	}
	n, err := w.WriteTo(p, a)
	return n, wrapSyscallError(writeToSyscallName, err)
}

func (fd *netFD) moteWriteTo(p []byte, sa syscall.Sockaddr) (int, error) {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return fd.moteWriteToInet4(p, sa)
	case *syscall.SockaddrInet6:
		return fd.moteWriteToInet6(p, sa)
	}
	return 0, wrapSyscallError(writeToSyscallName, syscall.EAFNOSUPPORT)
}

func (fd *netFD) moteWriteToInet4(p []byte, sa *syscall.SockaddrInet4) (int, error) {
	return fd.moteWriteToAddr(p, &UDPAddr{IP: IP(sa.Addr[:]).To16(), Port: sa.Port})
}

func (fd *netFD) moteWriteToInet6(p []byte, sa *syscall.SockaddrInet6) (int, error) {
	return fd.moteWriteToAddr(p, &UDPAddr{IP: IP(sa.Addr[:]), Port: sa.Port})
}

func (fd *netFD) moteWriteMsg(p []byte, oob []byte, sa syscall.Sockaddr) (n int, oobn int, err error) {
	if len(oob) > 0 {
		return 0, 0, wrapSyscallError(writeMsgSyscallName, syscall.EOPNOTSUPP)
	}
	if sa == nil {
		n, err = fd.moteWrite(p)
	} else {
		n, err = fd.moteWriteTo(p, sa)
	}
	return n, 0, err
}

func (fd *netFD) moteWriteMsgInet4(p []byte, oob []byte, sa *syscall.SockaddrInet4) (n int, oobn int, err error) {
	if len(oob) > 0 {
		return 0, 0, wrapSyscallError(writeMsgSyscallName, syscall.EOPNOTSUPP)
	}
	n, err = fd.moteWriteToInet4(p, sa)
	return n, 0, err
}

func (fd *netFD) moteWriteMsgInet6(p []byte, oob []byte, sa *syscall.SockaddrInet6) (n int, oobn int, err error) {
	if len(oob) > 0 {
		return 0, 0, wrapSyscallError(writeMsgSyscallName, syscall.EOPNOTSUPP)
	}
	n, err = fd.moteWriteToInet6(p, sa)
	return n, 0, err
}

func (fd *netFD) moteSetDeadline(t time.Time, which string) error {
	var err error = syscall.EOPNOTSUPP
	switch which {
	case "rw":
		if d, ok := fd.ext.(interface{ SetDeadline(time.Time) error }); ok {
			err = d.SetDeadline(t)
		}
	case "r":
		if d, ok := fd.ext.(interface{ SetReadDeadline(time.Time) error }); ok {
			err = d.SetReadDeadline(t)
		}
	case "w":
		if d, ok := fd.ext.(interface{ SetWriteDeadline(time.Time) error }); ok {
			err = d.SetWriteDeadline(t)
		}
	}
	return err
}

// setsockoptInt replaces fd.pfd.SetsockoptInt in net's option setters.
func (fd *netFD) setsockoptInt(level, name, v int) error {
	if fd.ext == nil {
		return fd.pfd.SetsockoptInt(level, name, v)
	}
	if s, ok := fd.ext.(interface {
		SetsockoptInt(level, name, v int) error
	}); ok {
		return s.SetsockoptInt(level, name, v)
	}
	return syscall.ENOPROTOOPT
}

// setsockoptLinger replaces fd.pfd.SetsockoptLinger.
func (fd *netFD) setsockoptLinger(level, name int, l *syscall.Linger) error {
	if fd.ext == nil {
		return fd.pfd.SetsockoptLinger(level, name, l)
	}
	if s, ok := fd.ext.(interface{ SetLinger(sec int) error }); ok {
		if l.Onoff == 0 {
			return s.SetLinger(-1)
		}
		return s.SetLinger(int(l.Linger))
	}
	return syscall.ENOPROTOOPT
}

// Multicast membership is not offered by the guest's stack yet.

func (fd *netFD) setsockoptIPMreqn(level, name int, mreq *syscall.IPMreqn) error {
	if fd.ext == nil {
		return fd.pfd.SetsockoptIPMreqn(level, name, mreq)
	}
	return syscall.ENOPROTOOPT
}

func (fd *netFD) setsockoptIPv6Mreq(level, name int, mreq *syscall.IPv6Mreq) error {
	if fd.ext == nil {
		return fd.pfd.SetsockoptIPv6Mreq(level, name, mreq)
	}
	return syscall.ENOPROTOOPT
}

// moteStackSocketFD is abi.StackSocketFD: the descriptor number that a
// socket in the guest's stack shows to Control's function. The Mote ABI
// answers setsockopt and getsockopt on it with success and no effect, so
// that libraries setting options through the raw descriptor (x/net's
// SetControlMessage in miekg/dns) go on; any other call gets EBADF.
const moteStackSocketFD = 0x3fff_fff0

// rawControl, rawRead and rawWrite replace pfd's in rawconn.go. A socket
// in the guest's stack has no descriptor: Control gets the stand-in
// above; Read goes through a pipe (moteBridge); Write is refused.
func (fd *netFD) rawControl(f func(uintptr)) error {
	if fd.ext == nil {
		return fd.pfd.RawControl(f)
	}
	f(moteStackSocketFD)
	return nil
}

func (fd *netFD) rawRead(f func(uintptr) bool) error {
	if fd.ext == nil {
		return fd.pfd.RawRead(f)
	}
	return fd.moteRawRead(f)
}

func (fd *netFD) rawWrite(f func(uintptr) bool) error {
	if fd.ext == nil {
		return fd.pfd.RawWrite(f)
	}
	return syscall.EOPNOTSUPP
}

// moteBridge carries a guest-stack socket's data to a function that reads
// it with its own read system call on the descriptor it is given (gRPC's
// reader, through SyscallConn().Read): the socket's bytes are moved into
// a non-blocking pipe whose read end the function gets.
type moteBridge struct {
	mu      sync.Mutex
	r, w    int    // the pipe; w is -1 once the socket reached its end
	pending []byte // read from the socket, not yet in the pipe
	buf     []byte
}

var moteBridges sync.Map // *netFD → *moteBridge

func (fd *netFD) moteRawRead(f func(uintptr) bool) error {
	src, ok := fd.ext.(io.Reader)
	if !ok {
		return syscall.EOPNOTSUPP
	}
	v, ok := moteBridges.Load(fd)
	if !ok {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
			return wrapSyscallError("pipe2", err)
		}
		v, ok = moteBridges.LoadOrStore(fd, &moteBridge{r: p[0], w: p[1], buf: make([]byte, 32<<10)})
		if ok {
			syscall.Close(p[0])
			syscall.Close(p[1])
		}
	}
	b := v.(*moteBridge)
	b.mu.Lock()
	defer b.mu.Unlock()
	for !f(uintptr(b.r)) {
		// The pipe is empty: move what the socket has into it.
		if len(b.pending) == 0 && b.w >= 0 {
			n, err := src.Read(b.buf)
			b.pending = b.buf[:n]
			if err == io.EOF {
				if n == 0 {
					syscall.Close(b.w) // the function reads 0: the end
					b.w = -1
				}
			} else if err != nil {
				return err
			}
		}
		if len(b.pending) > 0 {
			n, err := syscall.Write(b.w, b.pending)
			if n > 0 {
				b.pending = b.pending[n:]
			}
			if err != nil && err != syscall.EAGAIN {
				return wrapSyscallError("write", err)
			}
		}
	}
	return nil
}

// moteBridgeClose closes fd's pipe, if it has one.
func (fd *netFD) moteBridgeClose() {
	v, ok := moteBridges.LoadAndDelete(fd)
	if !ok {
		return
	}
	b := v.(*moteBridge)
	b.mu.Lock()
	defer b.mu.Unlock()
	syscall.Close(b.r)
	if b.w >= 0 {
		syscall.Close(b.w)
	}
}
