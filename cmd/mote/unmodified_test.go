package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUnmodifiedProgram builds testdata/unmodified — a module that does not
// require Mote, using only the standard library's net and net/http — for
// each target, from a copy whose go.mod must come out untouched, and checks
// it with real clients: HTTP from the host, a UDP echo, a dial out to the
// host, a refused dial, a miekg/dns server started with dns.ListenAndServe
// (asked by miekg/dns and dig), and the program's requests to itself over
// loopback (127.0.0.1 and ::1), also with no network interface.
func TestUnmodifiedProgram(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("testdata/unmodified")); err != nil {
		t.Fatal(err)
	}
	gomod, _ := os.ReadFile(filepath.Join(src, "go.mod"))
	gosum, _ := os.ReadFile(filepath.Join(src, "go.sum"))
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
			for _, want := range []string{"selftest: /hello 200 OK hello /hello from 127.0.0.1:", "selftest: /refused 200 OK dial tcp 127.0.0.1:1: connect: connection refused", `selftest: udp *net.UDPConn [::1]:`, `"echo: ping" <nil>`,
				"selftest: dns udp example.test. A 192.0.2.1 <nil>", "selftest: dns tcp example.test. A 192.0.2.1 <nil>",
				"selftest: interfaces lo[127.0.0.1/8 ::1/128]", `selftest: raw read "HTTP/1.0 200 OK"`, "selftest: stderr is a pipe or terminal"} {
				if o.status != 0 || !strings.Contains(o.stdout, want) {
					t.Fatalf("-selftest: status %d, no %q in\n%s%s", o.status, want, o.stdout, o.stderr)
				}
			}

			hp, up, du := freePort(t, "tcp"), freePort(t, "udp"), freePort(t, "udp")
			dt := freePort(t, "tcp")
			httpAddr, udpAddr := fmt.Sprintf("127.0.0.1:%d", hp), fmt.Sprintf("127.0.0.1:%d", up)
			dnsUDP, dnsTCP := fmt.Sprintf("127.0.0.1:%d", du), fmt.Sprintf("127.0.0.1:%d", dt)
			dialAddr := fmt.Sprintf("10.0.2.2:%d", hostPort) // the host, from the user network
			var s *server
			if target == "unix" {
				dialAddr = fmt.Sprintf("127.0.0.1:%d", hostPort)
				dnsTCP = dnsUDP // one address for both, on the host
				s = start(t, "run", "-t", "unix", image, "--", "-http", httpAddr, "-udp", udpAddr, "-dns", dnsUDP)
			} else {
				s = start(t, "run", "-t", target, "--strict", "--net", "user",
					"-p", fmt.Sprintf("%s:8080", httpAddr), "-p", fmt.Sprintf("%s:5353/udp", udpAddr),
					"-p", fmt.Sprintf("%s:5300/udp", dnsUDP), "-p", fmt.Sprintf("%s:5300", dnsTCP), image)
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
			// dns.ListenAndServe, which sets its options through the
			// raw descriptor (abi.StackSocketFD), asked by miekg/dns and dig.
			for _, q := range []struct{ proto, addr string }{{"udp", dnsUDP}, {"tcp", dnsTCP}} {
				m := new(dns.Msg)
				m.SetQuestion("example.test.", dns.TypeA)
				var r *dns.Msg
				for try := 0; try < 20; try++ { // a datagram may be lost: ask again
					if r, _, err = (&dns.Client{Net: q.proto, Timeout: 2 * time.Second}).Exchange(m, q.addr); err == nil {
						break
					}
				}
				if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
					t.Errorf("DNS over %s: %v %v", q.proto, r, err)
				}
			}
			t.Run("dig", func(t *testing.T) {
				needTool(t, "dig", "dnsutils")
				_, port, _ := net.SplitHostPort(dnsTCP)
				dout, err := exec.Command("dig", "@127.0.0.1", "-p", port, "+tcp", "+short", "+time=5", "+tries=3", "example.test", "A").CombinedOutput()
				if err != nil || strings.TrimSpace(string(dout)) != "192.0.2.1" {
					t.Errorf("dig: %v\n%s", err, dout)
				}
			})
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
	if after, _ := os.ReadFile(filepath.Join(src, "go.sum")); !bytes.Equal(after, gosum) {
		t.Errorf("go.sum changed by the build:\n%s", after)
	}
}
