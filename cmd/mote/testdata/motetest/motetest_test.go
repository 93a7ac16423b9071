// Package motetest has tests that listen and dial, as a service's tests
// do: mote's tests run them with mote test, where their sockets are the
// unikernel's loopback network.
package motetest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHTTPTestServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/there")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello /there" {
		t.Fatalf("%q", b)
	}
}

func TestUDPAndDeadlines(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 16)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	pc.WriteTo([]byte("pong"), from)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err = c.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := c.Read(buf); err == nil || !err.(net.Error).Timeout() {
		t.Fatalf("read past the deadline: %v", err)
	}
}

func TestRefused(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("dialled a closed listener")
	}
}
