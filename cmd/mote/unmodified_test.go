package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnmodifiedProgram builds testdata/unmodified — a module that does not
// require Mote, using only the standard library's net and net/http — for
// each target, from a copy whose go.mod must come out untouched, and checks
// it with real clients: HTTP from the host, a UDP echo, a dial out to the
// host, a refused dial, and the program's requests to itself over
// loopback (127.0.0.1 and ::1).
func TestUnmodifiedProgram(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/unmodified")); err != nil {
		t.Fatal(err)
	}
	gomod, _ := os.ReadFile(filepath.Join(src, "go.mod"))
	targets := []string{"unix", "spt"}
	if kvmOK() {
		targets = append(targets, "hvt")
	} else {
		t.Log("SKIPPED LOUDLY: the hvt case needs /dev/kvm")
	}
	// A host service the guest dials: it answers "hi back " and what it got.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("hi back "), b...))
			}()
		}
	}()
	hostPort := host.Addr().(*net.TCPAddr).Port

	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "unmodified."+target)
			if o := moteIn(t, src, nil, "build", "-t", target, "-o", image, "."); o.status != 0 {
				t.Fatalf("mote build: %d\n%s%s", o.status, o.stdout, o.stderr)
			}
			// Its own client over loopback, with no network interface.
			args := []string{"run", "-t", target, "--strict", image, "--", "-selftest"}
			if target == "unix" {
				args = []string{"run", "-t", "unix", image, "--", "-selftest"}
			}
			o := mote(t, args...)
			for _, want := range []string{"selftest: /hello 200 OK hello /hello from 127.0.0.1:", "selftest: /refused 200 OK dial tcp 127.0.0.1:1: connect: connection refused", `selftest: udp *net.UDPConn [::1]:`, `"echo: ping" <nil>`} {
				if o.status != 0 || !strings.Contains(o.stdout, want) {
					t.Fatalf("-selftest: status %d, no %q in\n%s%s", o.status, want, o.stdout, o.stderr)
				}
			}

			hp, up := freePort(t, "tcp"), freePort(t, "udp")
			httpAddr, udpAddr := fmt.Sprintf("127.0.0.1:%d", hp), fmt.Sprintf("127.0.0.1:%d", up)
			dialAddr := fmt.Sprintf("10.0.2.2:%d", hostPort) // the host, from the user network
			var s *server
			if target == "unix" {
				dialAddr = fmt.Sprintf("127.0.0.1:%d", hostPort)
				s = start(t, "run", "-t", "unix", image, "--", "-http", httpAddr, "-udp", udpAddr)
			} else {
				s = start(t, "run", "-t", target, "--strict", "--net", "user",
					"-p", fmt.Sprintf("%s:8080", httpAddr), "-p", fmt.Sprintf("%s:5353/udp", udpAddr), image)
			}
			s.waitHTTP(t, httpAddr)
			hc := &http.Client{Timeout: 20 * time.Second}
			get := func(path string) string {
				t.Helper()
				resp, err := hc.Get("http://" + httpAddr + path)
				if err != nil {
					t.Fatalf("GET %s: %v\nstderr:\n%s", path, err, s.stderr)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %s %s", path, resp.Status, b)
				}
				return string(b)
			}
			if b := get("/hello"); !strings.HasPrefix(b, "hello /hello from ") {
				t.Errorf("GET /hello: %q", b)
			}
			self := get("/self")
			wants := []string{"127.0.0.1: 200 OK hello /loop from 127.0.0.1:", "[::1]: 200 OK hello /loop from [::1]:"}
			if target == "unix" {
				wants = wants[:1] // it listens on the host's 127.0.0.1 only
			}
			for _, want := range wants {
				if !strings.Contains(self, want) {
					t.Errorf("GET /self: no %q in\n%s", want, self)
				}
			}
			if b := get("/dial?addr=" + dialAddr); !strings.HasPrefix(b, "*net.TCPConn ") || !strings.Contains(b, `"hi back hello\n" <nil>`) {
				t.Errorf("GET /dial: %q", b)
			}
			if b := get("/refused"); !strings.Contains(b, "connection refused") {
				t.Errorf("GET /refused: %q", b)
			}
			uc, err := net.Dial("udp", udpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			buf := make([]byte, 100)
			var n int
			for try := 0; try < 20; try++ { // a datagram may be lost: send again
				uc.Write([]byte("ping"))
				uc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if n, err = uc.Read(buf); err == nil {
					break
				}
			}
			if string(buf[:n]) != "echo: ping" {
				t.Errorf("UDP echo: %q %v", buf[:n], err)
			}
			if !strings.Contains(s.stdout.String(), "(*net.UDPConn)") {
				t.Errorf("stdout: %s", s.stdout)
			}
			s.cmd.Process.Signal(os.Interrupt)
			<-s.done
			if strings.Contains(s.stderr.String(), "outside the Mote ABI") {
				t.Errorf("calls outside the ABI:\n%s", s.stderr)
			}
		})
	}
	if after, _ := os.ReadFile(filepath.Join(src, "go.mod")); !bytes.Equal(after, gomod) {
		t.Errorf("go.mod changed by the build:\n%s", after)
	}
	if _, err := os.Stat(filepath.Join(src, "go.sum")); err == nil {
		t.Errorf("the build wrote a go.sum into the program's module")
	}
}
