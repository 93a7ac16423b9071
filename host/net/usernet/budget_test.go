package usernet

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// pushed is how many bytes a guest connection to a host peer that never
// reads takes before its writes stop: what sits in the guest's send
// buffer, in the user network (its stack, the copy, the host socket) and
// in the peer's receive buffer.
func pushed(t *testing.T, conns int) []int {
	_, g := guestOn(t, "02:00:00:00:00:0f", nil, 64)
	// The peer's receive buffer is small from the start (accepted sockets
	// inherit it), so that what is taken is what the path holds.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	hl, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	accepted := make(chan net.Conn, conns)
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				return
			}
			accepted <- c // never read
		}
	}()
	addr := fmt.Sprintf("10.0.2.2:%d", hl.Addr().(*net.TCPAddr).Port)
	var out []int
	buf := make([]byte, 64<<10)
	for i := 0; i < conns; i++ {
		c, err := g.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c, <-accepted)
		n := 0
		for {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			k, err := c.Write(buf)
			n += k
			if err != nil {
				break
			}
		}
		out = append(out, n)
	}
	return out
}

// TestFlowBuffersBounded: a guest connection to a host peer that never
// reads fills the guest's own send buffer (up to 1 MiB), the user
// network's bounded buffers (~800 KiB at most) and the peer's small
// receive buffer: 0.7–1.5 MB in all, measured. It took 5.4–6.2 MB before, ~4.6 MB
// of them in the tender.
func TestFlowBuffersBounded(t *testing.T) {
	for i, n := range pushed(t, 3) {
		if n > 2<<20 {
			t.Errorf("connection %d: %d KiB taken before writes stopped", i+1, n>>10)
		}
	}
}
