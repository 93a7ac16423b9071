//go:build ignore

// This file is added to package net with net_mote.go (host/inject). It is
// the loopback network a program has in a unikernel when it was built
// without guest/stdnet (a test binary go test built with mote's overlay,
// mote test): TCP and UDP between the program's own sockets on 127.0.0.1
// and ::1, in memory, as Go's net_fake.go serves js and wasip1. Anything
// else is unreachable (ENETUNREACH).

package net

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// moteLoopActive reports whether the program runs on hvt or spt, where
// the host's sockets do not exist.
var moteLoopActive = sync.OnceValue(func() bool {
	m := os.Getenv("MOTE_MANIFEST")
	return strings.Contains(m, `"target":"hvt"`) || strings.Contains(m, `"target":"spt"`)
})

var moteLoop struct {
	mu        sync.Mutex
	tcp       map[int]*moteLoopListener
	udp       map[int]*moteLoopPacket
	ephemeral int
}

// moteLoopPort returns port, or a free ephemeral one for 0; inUse says
// whether a port is taken. moteLoop.mu is held.
func moteLoopPort(port int, inUse func(int) bool) (int, error) {
	if port != 0 {
		if inUse(port) {
			return 0, syscall.EADDRINUSE
		}
		return port, nil
	}
	for i := 0; i < 28232; i++ {
		moteLoop.ephemeral++
		p := 32768 + moteLoop.ephemeral%28232
		if !inUse(p) {
			return p, nil
		}
	}
	return 0, syscall.EADDRINUSE
}

func moteLoopIP(ip IP, v6 bool) (IP, error) {
	switch {
	case len(ip) == 0 || ip.IsUnspecified():
		if v6 {
			return IPv6loopback, nil
		}
		return IPv4(127, 0, 0, 1), nil
	case ip.IsLoopback():
		return ip, nil
	}
	return nil, syscall.ENETUNREACH
}

// moteLoopSocket is moteSocket's stand-in without a stack.
func moteLoopSocket(ctx context.Context, family, sotype int, laddr, raddr Addr) (any, error) {
	if family != syscall.AF_INET && family != syscall.AF_INET6 {
		return nil, nil
	}
	v6 := family == syscall.AF_INET6
	moteLoop.mu.Lock()
	defer moteLoop.mu.Unlock()
	if moteLoop.tcp == nil {
		moteLoop.tcp, moteLoop.udp = map[int]*moteLoopListener{}, map[int]*moteLoopPacket{}
	}
	switch sotype {
	case syscall.SOCK_STREAM:
		if raddr == nil {
			la := laddr.(*TCPAddr)
			ip, err := moteLoopIP(la.IP, v6)
			if err != nil {
				return nil, syscall.EADDRNOTAVAIL
			}
			port, err := moteLoopPort(la.Port, func(p int) bool { return moteLoop.tcp[p] != nil })
			if err != nil {
				return nil, err
			}
			l := &moteLoopListener{addr: &TCPAddr{IP: ip, Port: port}, conns: make(chan *moteLoopConn, 512), done: make(chan struct{})}
			if len(la.IP) == 0 || la.IP.IsUnspecified() {
				l.addr.IP = IPv4zero
				if v6 {
					l.addr.IP = IPv6unspecified
				}
			}
			moteLoop.tcp[port] = l
			return l, nil
		}
		ra := raddr.(*TCPAddr)
		rip, err := moteLoopIP(ra.IP, v6)
		if err != nil {
			return nil, err
		}
		l := moteLoop.tcp[ra.Port]
		if l == nil {
			return nil, syscall.ECONNREFUSED
		}
		port, _ := moteLoopPort(0, func(p int) bool { return moteLoop.tcp[p] != nil })
		local := &TCPAddr{IP: rip, Port: port}
		remote := &TCPAddr{IP: rip, Port: ra.Port}
		c2s, s2c := newMoteLoopBuf(), newMoteLoopBuf()
		client := newMoteLoopConn(c2s, s2c, local, remote)
		server := newMoteLoopConn(s2c, c2s, remote, local)
		select {
		case l.conns <- server:
		default:
			return nil, syscall.ECONNREFUSED // the backlog is full
		}
		return client, nil
	case syscall.SOCK_DGRAM:
		var la *UDPAddr
		if laddr != nil {
			la = laddr.(*UDPAddr)
		} else {
			la = &UDPAddr{}
		}
		ip, err := moteLoopIP(la.IP, v6)
		if err != nil {
			return nil, syscall.EADDRNOTAVAIL
		}
		port, err := moteLoopPort(la.Port, func(p int) bool { return moteLoop.udp[p] != nil })
		if err != nil {
			return nil, err
		}
		pc := &moteLoopPacket{addr: &UDPAddr{IP: ip, Port: port}, in: make(chan moteLoopDatagram, 256), done: make(chan struct{}), dl: newMoteLoopDeadlines()}
		if raddr != nil {
			ra := raddr.(*UDPAddr)
			if _, err := moteLoopIP(ra.IP, v6); err != nil {
				return nil, err
			}
			pc.peer = ra
		}
		moteLoop.udp[port] = pc
		return pc, nil
	}
	return nil, nil
}

// moteLoopDeadlines are a socket's read and write deadlines; a change
// wakes the waits.
type moteLoopDeadlines struct {
	mu      sync.Mutex
	r, w    time.Time
	changed chan struct{}
}

func newMoteLoopDeadlines() *moteLoopDeadlines {
	return &moteLoopDeadlines{changed: make(chan struct{})}
}

// expired reports whether the read (or write) deadline has passed: then
// the call fails at once, whatever is ready, as net's poller does.
func (d *moteLoopDeadlines) expired(write bool) bool {
	d.mu.Lock()
	t := d.r
	if write {
		t = d.w
	}
	d.mu.Unlock()
	return !t.IsZero() && !time.Now().Before(t)
}

func (d *moteLoopDeadlines) set(r, w bool, t time.Time) error {
	d.mu.Lock()
	if r {
		d.r = t
	}
	if w {
		d.w = t
	}
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	return nil
}

// wait blocks until ch is ready, the deadline (read or write) passes, or
// it changes; it returns os.ErrDeadlineExceeded for a passed deadline.
func (d *moteLoopDeadlines) wait(ch <-chan struct{}, write bool, done <-chan struct{}) error {
	d.mu.Lock()
	t, changed := d.r, d.changed
	if write {
		t = d.w
	}
	d.mu.Unlock()
	var timeout <-chan time.Time
	if !t.IsZero() {
		left := time.Until(t)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		tm := time.NewTimer(left)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-ch:
	case <-changed:
	case <-done:
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// moteLoopBuf is one direction of a stream.
type moteLoopBuf struct {
	mu       sync.Mutex
	data     []byte
	eof      bool // the writer closed: the reader gets io.EOF once drained
	reset    bool // the reader closed: writes fail
	notified chan struct{}
}

const moteLoopBufMax = 1 << 20

func newMoteLoopBuf() *moteLoopBuf { return &moteLoopBuf{notified: make(chan struct{})} }

// changedLocked wakes everyone waiting on b. b.mu is held.
func (b *moteLoopBuf) changedLocked() {
	close(b.notified)
	b.notified = make(chan struct{})
}

type moteLoopConn struct {
	in, out       *moteLoopBuf
	local, remote *TCPAddr
	dl            *moteLoopDeadlines
	closeOnce     sync.Once
	closed        chan struct{}
}

func newMoteLoopConn(in, out *moteLoopBuf, local, remote *TCPAddr) *moteLoopConn {
	return &moteLoopConn{in: in, out: out, local: local, remote: remote, dl: newMoteLoopDeadlines(), closed: make(chan struct{})}
}

func (c *moteLoopConn) Read(p []byte) (int, error) {
	if c.dl.expired(false) {
		return 0, os.ErrDeadlineExceeded
	}
	for {
		select {
		case <-c.closed:
			return 0, ErrClosed
		default:
		}
		b := c.in
		b.mu.Lock()
		if len(b.data) > 0 {
			n := copy(p, b.data)
			b.data = b.data[n:]
			b.changedLocked()
			b.mu.Unlock()
			return n, nil
		}
		if b.eof {
			b.mu.Unlock()
			return 0, io.EOF
		}
		ch := b.notified
		b.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}
		if err := c.dl.wait(ch, false, c.closed); err != nil {
			return 0, err
		}
	}
}

func (c *moteLoopConn) Write(p []byte) (int, error) {
	if c.dl.expired(true) {
		return 0, os.ErrDeadlineExceeded
	}
	n := 0
	for n < len(p) {
		select {
		case <-c.closed:
			return n, ErrClosed
		default:
		}
		b := c.out
		b.mu.Lock()
		if b.reset {
			b.mu.Unlock()
			return n, syscall.ECONNRESET
		}
		if b.eof {
			b.mu.Unlock()
			return n, syscall.EPIPE
		}
		if room := moteLoopBufMax - len(b.data); room > 0 {
			k := min(room, len(p)-n)
			b.data = append(b.data, p[n:n+k]...)
			n += k
			b.changedLocked()
			b.mu.Unlock()
			continue
		}
		ch := b.notified
		b.mu.Unlock()
		if err := c.dl.wait(ch, true, c.closed); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *moteLoopConn) CloseWrite() error {
	c.out.mu.Lock()
	c.out.eof = true
	c.out.changedLocked()
	c.out.mu.Unlock()
	return nil
}

func (c *moteLoopConn) CloseRead() error {
	c.in.mu.Lock()
	c.in.reset = true
	c.in.changedLocked()
	c.in.mu.Unlock()
	return nil
}

func (c *moteLoopConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.CloseWrite()
		c.CloseRead()
	})
	return nil
}

func (c *moteLoopConn) LocalAddr() Addr                    { return c.local }
func (c *moteLoopConn) RemoteAddr() Addr                   { return c.remote }
func (c *moteLoopConn) SetDeadline(t time.Time) error      { return c.dl.set(true, true, t) }
func (c *moteLoopConn) SetReadDeadline(t time.Time) error  { return c.dl.set(true, false, t) }
func (c *moteLoopConn) SetWriteDeadline(t time.Time) error { return c.dl.set(false, true, t) }

// SetsockoptInt accepts the options net sets; a memory stream has no use
// for them.
func (c *moteLoopConn) SetsockoptInt(level, name, v int) error { return nil }

type moteLoopListener struct {
	addr  *TCPAddr
	conns chan *moteLoopConn
	once  sync.Once
	done  chan struct{}
}

func (l *moteLoopListener) Accept() (any, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

func (l *moteLoopListener) Close() error {
	l.once.Do(func() {
		moteLoop.mu.Lock()
		if moteLoop.tcp[l.addr.Port] == l {
			delete(moteLoop.tcp, l.addr.Port)
		}
		moteLoop.mu.Unlock()
		close(l.done)
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *moteLoopListener) Addr() Addr { return l.addr }

type moteLoopDatagram struct {
	data []byte
	from *UDPAddr
}

type moteLoopPacket struct {
	addr *UDPAddr
	peer *UDPAddr // connected to, or nil
	in   chan moteLoopDatagram
	dl   *moteLoopDeadlines
	once sync.Once
	done chan struct{}
}

func (c *moteLoopPacket) ReadFrom(p []byte) (int, Addr, error) {
	for {
		c.dl.mu.Lock()
		t, changed := c.dl.r, c.dl.changed
		c.dl.mu.Unlock()
		var timeout <-chan time.Time
		var tm *time.Timer
		if !t.IsZero() {
			left := time.Until(t)
			if left <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			tm = time.NewTimer(left)
			timeout = tm.C
		}
		select {
		case d := <-c.in:
			if tm != nil {
				tm.Stop()
			}
			return copy(p, d.data), d.from, nil
		case <-c.done:
			return 0, nil, ErrClosed
		case <-timeout:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed:
			if tm != nil {
				tm.Stop()
			}
		}
	}
}

func (c *moteLoopPacket) WriteTo(p []byte, a Addr) (int, error) {
	ua, ok := a.(*UDPAddr)
	if !ok || ua == nil {
		return 0, syscall.EINVAL
	}
	if _, err := moteLoopIP(ua.IP, true); err != nil {
		return 0, err
	}
	moteLoop.mu.Lock()
	dst := moteLoop.udp[ua.Port]
	moteLoop.mu.Unlock()
	if dst != nil {
		select {
		case dst.in <- moteLoopDatagram{append([]byte(nil), p...), &UDPAddr{IP: ua.IP, Port: c.addr.Port}}:
		default: // a full queue drops, as a socket buffer does
		}
	}
	return len(p), nil
}

func (c *moteLoopPacket) Read(p []byte) (int, error) {
	n, _, err := c.ReadFrom(p)
	return n, err
}

func (c *moteLoopPacket) Write(p []byte) (int, error) {
	if c.peer == nil {
		return 0, syscall.EDESTADDRREQ
	}
	return c.WriteTo(p, c.peer)
}

func (c *moteLoopPacket) Close() error {
	c.once.Do(func() {
		moteLoop.mu.Lock()
		if moteLoop.udp[c.addr.Port] == c {
			delete(moteLoop.udp, c.addr.Port)
		}
		moteLoop.mu.Unlock()
		close(c.done)
	})
	return nil
}

func (c *moteLoopPacket) LocalAddr() Addr {
	return c.addr
}

func (c *moteLoopPacket) RemoteAddr() Addr {
	if c.peer == nil {
		return nil
	}
	return c.peer
}

func (c *moteLoopPacket) SetDeadline(t time.Time) error          { return c.dl.set(true, true, t) }
func (c *moteLoopPacket) SetReadDeadline(t time.Time) error      { return c.dl.set(true, false, t) }
func (c *moteLoopPacket) SetWriteDeadline(t time.Time) error     { return c.dl.set(false, true, t) }
func (c *moteLoopPacket) SetsockoptInt(level, name, v int) error { return nil }
