package usernet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/guest/netstack"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A guest netstack on the user network: published TCP and UDP ports reach
// it from the host's loopback, and it reaches the host through the
// gateway address.
func TestUserNetwork(t *testing.T) {
	hostPort := freePort(t)
	pubs := []Publish{
		{Proto: "tcp", HostAddr: fmt.Sprintf("127.0.0.1:%d", hostPort), GuestPort: 80},
		{Proto: "udp", HostAddr: fmt.Sprintf("127.0.0.1:%d", hostPort), GuestPort: 53},
	}
	_, g := guestOn(t, "02:00:00:00:00:0f", pubs, maxFlows)

	// Guest services.
	l, err := g.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "from the guest") }))
	pc, err := g.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	go answerUDP(pc, bytes.ToUpper)

	// Host to guest, TCP.
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 5; i++ {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "from the guest" {
			t.Fatalf("got %q", b)
		}
	}
	// Host to guest, UDP.
	uc, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", hostPort))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	uc.Write([]byte("query"))
	buf := make([]byte, 64)
	k, err := uc.Read(buf)
	if err != nil || string(buf[:k]) != "QUERY" {
		t.Fatalf("udp: %q %v", buf[:k], err)
	}

	// Guest to host through the gateway.
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "from the host") }))
	defer hl.Close()
	gc := &http.Client{Transport: &http.Transport{DialContext: g.DialContext}, Timeout: 10 * time.Second}
	resp, err := gc.Get(fmt.Sprintf("http://10.0.2.2:%d/", hl.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "from the host" {
		t.Fatalf("got %q", b)
	}

	// A closed host port is a refused connection in the guest, promptly.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := g.DialContext(ctx, "tcp", fmt.Sprintf("10.0.2.2:%d", freePort(t))); err == nil {
		c.Close()
		t.Fatal("dial to a closed port succeeded")
	}
}

func TestParsePublish(t *testing.T) {
	for in, want := range map[string]Publish{
		"8080:80":               {Proto: "tcp", HostAddr: "127.0.0.1:8080", GuestPort: 80},
		"127.0.0.1:8080:80":     {Proto: "tcp", HostAddr: "127.0.0.1:8080", GuestPort: 80},
		"127.0.0.2:5353:53/udp": {Proto: "udp", HostAddr: "127.0.0.2:5353", GuestPort: 53},
		"fd:3:8080":             {Proto: "tcp", HostAddr: "fd:3", GuestPort: 8080, FD: 3},
	} {
		got, err := ParsePublish(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"80", "a:80", "8080:0", "8080:80/sctp", "host:8080:80", "99999:80", "fd:1:80", "fd:x:80", "fd:3"} {
		if _, err := ParsePublish(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// guestOn makes a user network publishing pubs, with at most maxFlows
// flows each way, and a guest netstack on it, both closed when the test
// ends.
func guestOn(t *testing.T, mac string, pubs []Publish, maxFlows int64) (*Network, *netstack.Stack) {
	return guestWith(t, mac, pubs, Options{}, maxFlows)
}

// guestWith is guestOn with options.
func guestWith(t *testing.T, mac string, pubs []Publish, opt Options, maxFlows int64) (*Network, *netstack.Stack) {
	t.Helper()
	n, err := newNetwork(mac, pubs, opt, maxFlows)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	g, err := netstack.New([]abi.NIC{netstackNIC(n)}, netstack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return n, g
}

// serveTCP hands each connection l accepts to handle, on a goroutine of
// its own, until l is closed.
func serveTCP(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

// answerUDP answers each datagram pc receives with reply(datagram), until
// pc is closed.
func answerUDP(pc net.PacketConn, reply func([]byte) []byte) {
	buf := make([]byte, 512)
	for {
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(reply(buf[:k]), from)
	}
}

// eightOfNine opens nine UDP flows with dial, through a network whose
// bound is eight: the first eight must be answered, the ninth not.
func eightOfNine(t *testing.T, what string, dial func(i int) (net.Conn, error)) {
	t.Helper()
	for i := range 9 {
		c, err := dial(i)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := pinged(c); got != (i < 8) {
			t.Errorf("%s %d answered: %v", what, i+1, got)
		}
	}
}

// pinged reports whether c answers "ping" with "ping" within 3 s.
func pinged(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 8)
	k, err := c.Read(buf)
	return err == nil && string(buf[:k]) == "ping"
}

// eventually reports whether f returns true within 10 s, asking every 20 ms.
func eventually(f func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if f() {
			return true
		}
	}
	return false
}

func netstackNIC(n *Network) abi.NIC {
	d := n.NIC("net0")
	d.FD = n.GuestFD()
	return d
}

// TestFlowsBounded: a guest may have only so many connections and UDP
// flows open through the network; past that its connections are reset
// and its datagrams dropped, and a closed connection frees its place.
func TestFlowsBounded(t *testing.T) {
	_, g := guestOn(t, "02:00:00:00:00:0e", nil, 8)

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go serveTCP(hl, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	addr := fmt.Sprintf("10.0.2.2:%d", hl.Addr().(*net.TCPAddr).Port)
	dial := func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return g.DialContext(ctx, "tcp", addr)
	}
	var conns []net.Conn
	for i := 0; i < 8; i++ {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a ninth connection was let through")
	}
	conns[0].Close()
	if !eventually(func() bool {
		c, err := dial()
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatal("a closed connection did not free its place")
	}
	for _, c := range conns[1:] {
		c.Close()
	}

	// UDP: eight flows answered, a ninth not.
	up, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go answerUDP(up, func(b []byte) []byte { return b })
	uaddr := fmt.Sprintf("10.0.2.2:%d", up.LocalAddr().(*net.UDPAddr).Port)
	eightOfNine(t, "udp flow", func(int) (net.Conn, error) {
		return g.DialContext(context.Background(), "udp", uaddr)
	})
}

// TestPublishedBounded: host clients may have only so many connections
// and UDP flows open to the guest's published ports; past that a
// connection is closed and a datagram dropped, and a closed connection
// frees its place.
func TestPublishedBounded(t *testing.T) {
	hostPort := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	addr2 := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // a second UDP port: the bound is the network's
	pubs := []Publish{{Proto: "tcp", HostAddr: addr, GuestPort: 80}, {Proto: "udp", HostAddr: addr, GuestPort: 53}, {Proto: "udp", HostAddr: addr2, GuestPort: 53}}
	_, g := guestOn(t, "02:00:00:00:00:0d", pubs, 8)

	l, err := g.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveTCP(l, func(c net.Conn) { io.Copy(c, c); c.Close() })
	// open connects and checks that the guest echoes.
	open := func() (net.Conn, bool) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("x"))
		buf := make([]byte, 1)
		_, err = io.ReadFull(c, buf)
		c.SetDeadline(time.Time{})
		return c, err == nil
	}
	var conns []net.Conn
	for i := 0; i < 8; i++ {
		c, ok := open()
		if !ok {
			t.Fatalf("connection %d was not served", i+1)
		}
		conns = append(conns, c)
	}
	if c, ok := open(); ok {
		t.Error("a ninth connection was served")
	} else {
		c.Close()
	}
	conns[0].Close()
	if !eventually(func() bool {
		c, ok := open()
		c.Close()
		return ok
	}) {
		t.Error("a closed connection did not free its place")
	}
	for _, c := range conns[1:] {
		c.Close()
	}

	// UDP: eight clients answered, over both ports, a ninth not.
	pc, err := g.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go answerUDP(pc, func(b []byte) []byte { return b })
	eightOfNine(t, "udp client", func(i int) (net.Conn, error) {
		if i%2 == 1 {
			return net.Dial("udp", addr2)
		}
		return net.Dial("udp", addr)
	})
}

// A host address that cannot be bound fails the network, through Ready.
func TestPublishInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n, err := New("02:00:00:00:00:0c", []Publish{{Proto: "tcp", HostAddr: l.Addr().String(), GuestPort: 80}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	defer unix.Close(n.GuestFD())
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Ready with the host port in use: %v", err)
	}
	n.Close() // and again, deferred: a second Close does nothing
}

// TestNoHost: with NoHost the gateway is closed: a guest's TCP connection
// to a service on the host's loopback is refused and its UDP gets no
// answer, while the same service answers without it.
func TestNoHost(t *testing.T) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go serveTCP(hl, func(c net.Conn) { c.Close() })
	up, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go answerUDP(up, func(b []byte) []byte { return b })
	tcpAddr := fmt.Sprintf("10.0.2.2:%d", hl.Addr().(*net.TCPAddr).Port)
	udpAddr := fmt.Sprintf("10.0.2.2:%d", up.LocalAddr().(*net.UDPAddr).Port)
	for _, noHost := range []bool{false, true} {
		_, g := guestWith(t, fmt.Sprintf("02:00:00:00:01:%02x", btoi(noHost)), nil, Options{NoHost: noHost}, maxFlows)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := g.DialContext(ctx, "tcp", tcpAddr)
		cancel()
		if err == nil {
			c.Close()
		}
		if (err != nil) != noHost {
			t.Errorf("NoHost %v: TCP to the host's loopback: %v", noHost, err)
		}
		u, err := g.DialContext(context.Background(), "udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if got := pinged(u); got == noHost {
			t.Errorf("NoHost %v: UDP to the host's loopback answered: %v", noHost, got)
		}
		u.Close()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A listening socket handed over (mote serve's), with a connection
// already waiting in its queue before the network exists, and a guest
// that listens only later: the connection waits (Options.WaitGuest) and
// is served, not reset. Idle says when no published connection is open.
func TestHandedOverListenerWaitsForTheGuest(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd())) // the network's to close
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The client connects before anything accepts: the kernel queues it.
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, g := guestWith(t, "02:00:00:00:00:0e", []Publish{{Proto: "tcp", FD: fd, HostAddr: "fd", GuestPort: 80}}, Options{WaitGuest: 10 * time.Second}, maxFlows)
	time.Sleep(300 * time.Millisecond) // the guest boots
	if n.Idle() != 0 {
		t.Errorf("Idle %v with a connection open", n.Idle())
	}
	gl, err := g.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	go serveTCP(gl, func(c net.Conn) { io.Copy(c, c); c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if !pinged(c) {
		t.Fatal("the waiting connection was not served once the guest listened")
	}
	c.Close()
	if !eventually(func() bool { return n.Idle() > 0 }) {
		t.Error("Idle stays 0 after the last connection closed")
	}
}
