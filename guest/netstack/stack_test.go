package netstack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/moteos/mote/abi"
)

// pair returns two connected frame descriptors, as a NIC and its host side.
func pair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

func newStack(t *testing.T, fd int, n int) *Stack {
	t.Helper()
	return newStackWith(t, fd, n, Options{})
}

func newStackWith(t *testing.T, fd int, n int, opt Options) *Stack {
	t.Helper()
	st, err := New([]abi.NIC{{
		Name: "net0", FD: fd, MTU: 1500,
		MAC:  fmt.Sprintf("02:00:00:00:00:%02x", n),
		Addr: fmt.Sprintf("10.0.0.%d/24", n),
		DNS:  []string{"10.0.0.1"},
	}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Two stacks joined by a wire: HTTP over TCP, UDP, and name resolution
// through the DNS server configured in the manifest.
func TestTwoStacks(t *testing.T) {
	a, b := pair(t)
	server, client := newStack(t, a, 1), newStack(t, b, 2)

	l, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	go srv.Serve(l)
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}, Timeout: 10 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := hc.Get(fmt.Sprintf("http://10.0.0.1/req%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf("hello /req%d", i) {
			t.Fatalf("body %q", body)
		}
	}

	pc, err := server.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	c, err := client.DialContext(context.Background(), "udp", "10.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp echo: %q, %v", buf[:n], err)
	}

	// A name resolves through the server's DNS (nothing listens on :53
	// here, so the lookup must fail by refusal or timeout, not hang or
	// reach the host's resolver).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := client.Resolver().LookupHost(ctx, "example.test"); err == nil {
		t.Fatal("lookup without a DNS server succeeded")
	}
}

// Malformed frames are dropped and counted, and the stack keeps working.
// TestHeldStackServesTheEarlyConnection: a connection attempt that
// reaches a held stack before it listens is accepted once it does, as the
// request that cold-starts a unikernel must be; a stack that reads at once
// refuses it.
func TestHeldStackServesTheEarlyConnection(t *testing.T) {
	for _, hold := range []bool{true, false} {
		a, b := pair(t)
		server, client := newStackWith(t, a, 1, Options{Hold: hold}), newStack(t, b, 2)
		dialed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := client.DialContext(ctx, "tcp", "10.0.0.1:80")
			if err == nil {
				c.Close()
			}
			dialed <- err
		}()
		// The SYN is on the wire well before the server listens.
		time.Sleep(200 * time.Millisecond)
		select {
		case err := <-dialed:
			if hold {
				t.Fatalf("held: the dial ended before the server listened: %v", err)
			}
			if err == nil {
				t.Fatal("not held: a connection to a port nobody listens on succeeded")
			}
			continue
		default:
		}
		if !hold {
			t.Fatal("not held: the dial to a closed port was not refused within 200 ms")
		}
		l, err := server.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		if err := <-dialed; err != nil {
			t.Fatalf("held: the early connection failed: %v", err)
		}
		l.Close()
	}
}

func TestBadFramesDropped(t *testing.T) {
	a, b := pair(t)
	st := newStack(t, a, 1)
	for _, f := range [][]byte{{1, 2, 3}, make([]byte, 3000), make([]byte, 13)} {
		if _, err := syscall.Write(b, f); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.Stats()[0].RxDropped < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := st.Stats()[0].RxDropped; got != 3 {
		t.Fatalf("dropped %d frames, want 3", got)
	}
	syscall.Close(b)
}

// A neighbour the manifest names is not asked for: the first frame of a
// connection through the gateway is the SYN itself, sent to the
// neighbour's MAC, where without it an ARP request comes first.
func TestManifestNeighbourSkipsARP(t *testing.T) {
	for _, c := range []struct {
		name      string
		neighbors []abi.Neighbor
		etherType uint16
	}{
		{"named", []abi.Neighbor{{Addr: "10.0.0.1", MAC: "02:00:00:00:00:09"}}, 0x0800},
		{"unknown", nil, 0x0806},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := pair(t)
			defer syscall.Close(b)
			st, err := New([]abi.NIC{{
				Name: "net0", FD: a, MTU: 1500, MAC: "02:00:00:00:00:02",
				Addr: "10.0.0.2/24", Gateway: "10.0.0.1", Neighbors: c.neighbors,
			}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			go st.DialContext(ctx, "tcp", "192.0.2.1:80") // through the gateway; nobody answers
			frame := make([]byte, 2048)
			syscall.SetsockoptTimeval(b, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Sec: 5})
			n, err := syscall.Read(b, frame)
			if err != nil || n < 14 {
				t.Fatalf("no frame from the guest: %d, %v", n, err)
			}
			if et := uint16(frame[12])<<8 | uint16(frame[13]); et != c.etherType {
				t.Fatalf("first frame has EtherType %#04x, want %#04x", et, c.etherType)
			}
			if c.neighbors != nil && fmt.Sprintf("%x", frame[:6]) != "020000000009" {
				t.Fatalf("SYN sent to %x, want the neighbour's MAC", frame[:6])
			}
		})
	}
}

// BenchmarkHTTP measures keep-alive HTTP requests with a small answer
// between two stacks joined by a wire, over 16 connections a CPU at once: the
// per-request cost of netstack and net/http, on both ends, in CPU time
// (cpu-ns/op: the process's, so it counts the wire's system calls too).
// Run it with -cpu 1 to match a one-vCPU guest.
func BenchmarkHTTP(b *testing.B) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	server, err := New([]abi.NIC{{Name: "net0", FD: fds[0], MTU: 1500, MAC: "02:00:00:00:00:01", Addr: "10.0.0.1/24"}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	client, err := New([]abi.NIC{{Name: "net0", FD: fds[1], MTU: 1500, MAC: "02:00:00:00:00:02", Addr: "10.0.0.2/24"}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	l, err := server.Listen("tcp", ":80")
	if err != nil {
		b.Fatal(err)
	}
	page := []byte("body { font-family: sans-serif; }\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Write(page)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext, MaxIdleConnsPerHost: 16 * runtime.GOMAXPROCS(0)}, Timeout: 10 * time.Second}
	get := func() {
		resp, err := hc.Get("http://10.0.0.1/style.css")
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %s", resp.Status)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	get() // connect
	b.ReportAllocs()
	b.SetParallelism(16) // 16 connections a CPU, to keep the stacks busy
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
