// Command unmodified is a service written with nothing but the standard
// library, as if it had never heard of Mote: http.ListenAndServe, a UDP
// echo on net.ListenPacket, net.Dial to the host, and requests to itself
// over loopback. mote's tests run it, unchanged, on every target.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	httpAddr := flag.String("http", ":8080", "HTTP address")
	udpAddr := flag.String("udp", ":5353", "UDP echo address")
	dnsAddr := flag.String("dns", ":5300", "DNS server address (UDP and TCP)")
	files := flag.String("files", "", "check the file tree: a read-only mount's path, then a writable one's (comma-separated)")
	selftest := flag.Bool("selftest", false, "serve on loopback, be its own client, print the results and exit")
	flag.Parse()
	if *files != "" {
		ro, rw, _ := strings.Cut(*files, ",")
		os.Exit(fileTest(ro, rw))
	}
	if *selftest {
		*httpAddr, *udpAddr, *dnsAddr = "127.0.0.1:8080", "[::1]:5353", "127.0.0.1:5300"
	}
	serveDNS(*dnsAddr)

	pc, err := net.ListenPacket("udp", *udpAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				log.Fatal(err)
			}
			pc.WriteTo(append([]byte("echo: "), buf[:n]...), from)
		}
	}()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s\n", r.URL.Path, r.RemoteAddr)
	})
	// /self asks this very server over loopback, IPv4 and IPv6.
	http.HandleFunc("/self", func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(*httpAddr)
		for _, host := range []string{"127.0.0.1", "[::1]", "localhost"} {
			resp, err := http.Get("http://" + host + ":" + port + "/loop")
			if err != nil {
				fmt.Fprintf(w, "%s: %v\n", host, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Fprintf(w, "%s: %s %s", host, resp.Status, b)
		}
	})
	// /dial?addr=HOST:PORT connects out, says hello and returns the reply.
	http.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", r.URL.Query().Get("addr"))
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer c.Close()
		tc := c.(*net.TCPConn) // the standard type, as on Linux
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(tc, "hello\n")
		tc.CloseWrite()
		b, err := io.ReadAll(tc)
		fmt.Fprintf(w, "%T %s->%s: %q %v\n", c, c.LocalAddr(), c.RemoteAddr(), b, err)
	})
	// /refused dials a port nobody listens on.
	http.HandleFunc("/refused", func(w http.ResponseWriter, r *http.Request) {
		_, err := net.DialTimeout("tcp", "127.0.0.1:1", 5*time.Second)
		fmt.Fprintf(w, "%v\n", err)
	})
	srv := &http.Server{Addr: *httpAddr}
	fmt.Printf("serving HTTP on %s and UDP echo on %s (%T)\n", *httpAddr, pc.LocalAddr(), pc)
	if *selftest {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			log.Fatal(err)
		}
		go srv.Serve(ln)
		os.Exit(selfTest(*httpAddr, pc.LocalAddr().String(), *dnsAddr))
	}
	if err := srv.ListenAndServe(); err != nil && !strings.Contains(err.Error(), "closed") {
		log.Fatal(err)
	}
}

// selfTest is the program's own client, over loopback only: it needs no
// network interface. It returns the exit status.
func selfTest(httpAddr, udpAddr, dnsAddr string) int {
	status := 0
	for _, path := range []string{"/hello", "/refused"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			fmt.Println("selftest:", path, err)
			status = 1
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("selftest: %s %s %s", path, resp.Status, b)
	}
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		fmt.Println("selftest: udp:", err)
		return 1
	}
	c.Write([]byte("ping"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	fmt.Printf("selftest: udp %T %s->%s: %q %v\n", c, c.LocalAddr(), c.RemoteAddr(), buf[:n], err)
	if err != nil {
		status = 1
	}
	// Read through the raw descriptor, as gRPC's reader does.
	if got, err := rawRead(httpAddr); err != nil {
		fmt.Println("selftest: raw read:", err)
		status = 1
	} else {
		fmt.Printf("selftest: raw read %q\n", got)
	}
	ifs, err := net.Interfaces()
	var names []string
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		names = append(names, fmt.Sprintf("%s%v", ifi.Name, addrs))
	}
	fmt.Printf("selftest: interfaces %s %v\n", strings.Join(names, " "), err)
	fi, err := os.Stderr.Stat()
	if err != nil {
		fmt.Println("selftest: stat stderr:", err)
		status = 1
	} else {
		fmt.Printf("selftest: stderr is a %s\n", map[bool]string{true: "pipe or terminal", false: "file"}[fi.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) != 0])
	}
	for _, proto := range []string{"udp", "tcp"} {
		a, err := askDNS(proto, dnsAddr)
		fmt.Printf("selftest: dns %s example.test. A %s %v\n", proto, a, err)
		if err != nil {
			status = 1
		}
	}
	return status
}

// rawRead sends a request to the HTTP server at addr and reads the start
// of the reply with its own read system call on SyscallConn's descriptor.
func rawRead(addr string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	io.WriteString(c, "GET /raw HTTP/1.0\r\n\r\n")
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return "", err
	}
	buf := make([]byte, 15)
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), buf)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	return string(buf[:max(n, 0)]), err
}
