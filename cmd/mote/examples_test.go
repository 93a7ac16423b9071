package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The examples, run through mote on unix and (where KVM is) on hvt with
// user networking, answered by real clients: Go's HTTP client, curl, dig
// and a miekg/dns client.

type httpdCase struct {
	name   string
	args   func(port int) []string
	target string
}

func httpdCases(t *testing.T) []httpdCase {
	cases := []httpdCase{{"unix", func(p int) []string {
		return []string{"run", "-t", "unix", "./examples/httpd", "--", "-addr", fmt.Sprintf("127.0.0.1:%d", p)}
	}, "unix"}}
	if kvmOK() {
		cases = append(cases, httpdCase{"hvt-user", func(p int) []string {
			// 32 MiB of guest memory: the networking goal says httpd serves in it.
			return []string{"run", "-t", "hvt", "--strict", "-m", "32M", "--net", "user", "-p", fmt.Sprintf("127.0.0.1:%d:8080", p), "./examples/httpd"}
		}, "hvt"})
	} else {
		t.Log("SKIPPED LOUDLY: hvt cases need /dev/kvm")
	}
	cases = append(cases, httpdCase{"spt-user", func(p int) []string {
		return []string{"run", "-t", "spt", "--strict", "-m", "32M", "--net", "user", "-p", fmt.Sprintf("127.0.0.1:%d:8080", p), "./examples/httpd"}
	}, "spt"})
	return cases
}

// needTool skips, loudly, a check whose client is not installed.
func needTool(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIPPED LOUDLY: %s is missing (Debian package %s; scripts/install-deps installs it)", name, debianPackage)
	}
}

func TestExampleHTTPD(t *testing.T) {
	for _, c := range httpdCases(t) {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t, "tcp")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			s := start(t, c.args(port)...)
			s.waitHTTP(t, addr)

			hc := &http.Client{Timeout: 20 * time.Second}
			resp, err := hc.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "Served by a Mote unikernel") {
				t.Fatalf("GET /: %d %q", resp.StatusCode, body)
			}
			resp, err = hc.Get("http://" + addr + "/api/info")
			if err != nil {
				t.Fatal(err)
			}
			var info struct {
				Service, Target string
				Requests        int
			}
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err != nil || info.Service != "httpd" || info.Target != c.target || info.Requests != 2 {
				t.Fatalf("GET /api/info: %+v %v", info, err)
			}
			t.Run("curl", func(t *testing.T) {
				needTool(t, "curl", "curl")
				cout, err := exec.Command("curl", "-sS", "--max-time", "20", "-i", "http://"+addr+"/style.css").CombinedOutput()
				if err != nil || !strings.Contains(string(cout), "200 OK") || !strings.Contains(string(cout), "font-family") {
					t.Fatalf("curl: %v\n%s", err, cout)
				}
			})
			// A client that disconnects mid-request does not wedge the server.
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Write([]byte("GET /api/info HTTP/1.1\r\nHost: x\r\n"))
				c.Close()
			}
			resp, err = hc.Get("http://" + addr + "/missing")
			if err != nil || resp.StatusCode != 404 {
				t.Fatalf("GET /missing: %v %v", resp, err)
			}
			resp.Body.Close()
			s.stop(t)
			if !strings.Contains(s.stderr.String(), "shut down") {
				t.Errorf("no graceful shutdown in the log:\n%s", s.stderr)
			}
		})
	}
}

func TestExampleDNSD(t *testing.T) {
	type dnsCase struct {
		name string
		args func(udp, tcp int) []string
		same bool // one port for UDP and TCP
	}
	cases := []dnsCase{{"unix", func(u, _ int) []string {
		return []string{"run", "-t", "unix", "./examples/dnsd", "--", "-addr", fmt.Sprintf("127.0.0.1:%d", u)}
	}, true}}
	if kvmOK() {
		cases = append(cases, dnsCase{"hvt-user", func(u, tc int) []string {
			return []string{"run", "-t", "hvt", "--strict", "--net", "user",
				"-p", fmt.Sprintf("127.0.0.1:%d:5353/udp", u), "-p", fmt.Sprintf("127.0.0.1:%d:5353", tc), "./examples/dnsd"}
		}, false})
	}
	cases = append(cases, dnsCase{"spt-user", func(u, tc int) []string {
		return []string{"run", "-t", "spt", "--strict", "--net", "user",
			"-p", fmt.Sprintf("127.0.0.1:%d:5353/udp", u), "-p", fmt.Sprintf("127.0.0.1:%d:5353", tc), "./examples/dnsd"}
	}, false})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := freePort(t, "udp")
			tp := up
			if !c.same {
				tp = freePort(t, "tcp")
			}
			s := start(t, c.args(up, tp)...)
			uaddr, taddr := fmt.Sprintf("127.0.0.1:%d", up), fmt.Sprintf("127.0.0.1:%d", tp)
			s.waitFor(t, taddr, func() error {
				m := new(dns.Msg)
				m.SetQuestion("example.mote.", dns.TypeSOA)
				_, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, taddr)
				return err
			})

			for _, proto := range []string{"udp", "tcp"} {
				cl := &dns.Client{Net: proto, Timeout: 10 * time.Second}
				addr := uaddr
				if proto == "tcp" {
					addr = taddr
				}
				m := new(dns.Msg)
				m.SetQuestion("example.mote.", dns.TypeA)
				var r *dns.Msg
				var err error
				for try := 0; try < 20; try++ { // a datagram may be lost: ask again
					if r, _, err = cl.Exchange(m, addr); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil || len(r.Answer) != 1 || !r.Authoritative || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
					t.Fatalf("miekg %s A: %v %v", proto, r, err)
				}
				m.SetQuestion("nosuch.example.mote.", dns.TypeA)
				if r, _, err = cl.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
					t.Fatalf("miekg %s NXDOMAIN: %v %v", proto, r, err)
				}
			}
			t.Run("dig", func(t *testing.T) {
				needTool(t, "dig", "dnsutils")
				for _, q := range []struct {
					args []string
					want string
				}{
					{[]string{"-p", fmt.Sprint(up), "example.mote", "TXT"}, `"served by a Mote unikernel"`},
					{[]string{"-p", fmt.Sprint(tp), "+tcp", "www.example.mote", "A"}, "192.0.2.10"},
					{[]string{"-p", fmt.Sprint(up), "example.mote", "MX"}, "10 mail.example.mote."},
					{[]string{"-p", fmt.Sprint(tp), "+tcp", "example.mote", "AAAA"}, "2001:db8::10"},
				} {
					args := append([]string{"@127.0.0.1", "+short", "+time=5", "+tries=3"}, q.args...)
					dout, err := exec.Command("dig", args...).CombinedOutput()
					if err != nil || !strings.Contains(string(dout), q.want) {
						t.Fatalf("dig %v: %v\n%s", q.args, err, dout)
					}
				}
			})
			s.stop(t)
		})
	}
}

// TestExampleTLSD: crypto/tls inside the unikernel, answered by curl -k,
// openssl s_client and Go's TLS client.
func TestExampleTLSD(t *testing.T) {
	type tlsCase struct {
		name string
		args func(port int) []string
	}
	cases := []tlsCase{{"unix", func(p int) []string {
		return []string{"run", "-t", "unix", "./examples/tlsd", "--", "-addr", fmt.Sprintf("127.0.0.1:%d", p)}
	}}}
	if kvmOK() {
		cases = append(cases, tlsCase{"hvt-user", func(p int) []string {
			return []string{"run", "-t", "hvt", "--strict", "--net", "user", "-p", fmt.Sprintf("127.0.0.1:%d:8443", p), "./examples/tlsd"}
		}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t, "tcp")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			s := start(t, c.args(port)...)
			var conn *tls.Conn
			s.waitFor(t, addr, func() (err error) {
				conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
				return err
			})
			st := conn.ConnectionState()
			conn.Close()
			if st.Version != tls.VersionTLS13 || len(st.PeerCertificates) != 1 || st.PeerCertificates[0].Subject.Organization[0] != "Mote tlsd" {
				t.Fatalf("TLS state: version %x, certs %d", st.Version, len(st.PeerCertificates))
			}
			out, err := exec.Command("curl", "-sSk", "--max-time", "20", "https://"+addr+"/").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "hello over TLS 1.3") {
				t.Fatalf("curl -k: %v\n%s", err, out)
			}
			if _, err := exec.LookPath("openssl"); err == nil {
				cmd := exec.Command("openssl", "s_client", "-connect", addr, "-servername", "localhost")
				cmd.Stdin = strings.NewReader("")
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "TLSv1.3") {
					t.Fatalf("openssl s_client: %v\n%s", err, out)
				}
			} else {
				t.Log("openssl not installed; curl and Go's client checked the handshake")
			}
			syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
			<-s.done
		})
	}
}

// TestExampleHTTPDOverTAP runs httpd on hvt behind a TAP interface in a
// network namespace the test creates, and fetches from inside it with curl.
func TestExampleHTTPDOverTAP(t *testing.T) {
	needKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root to create a network namespace and a TAP device")
	}
	ns := fmt.Sprintf("mote-cli-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
	ip("-n", ns, "addr", "add", "10.99.0.1/24", "dev", "tap0")
	ip("-n", ns, "link", "set", "tap0", "up")
	ip("-n", ns, "link", "set", "lo", "up")

	s := startCmd(t, "ip", "netns", "exec", ns, moteBin, "run", "-t", "hvt", "--strict",
		"--net", "tap:tap0,addr=10.99.0.2/24,gw=10.99.0.1", "./examples/httpd")
	var out []byte
	var err error
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("mote exited early:\n%s", s.stderr)
		default:
		}
		out, err = exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", "http://10.99.0.2:8080/api/info").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), `"target":"hvt"`) {
		t.Fatalf("curl over tap: %v\n%s\nmote stderr:\n%s", err, out, s.stderr)
	}
	// ICMP echo is answered by the guest's stack.
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatal("ping is missing: run scripts/install-deps")
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "5", "10.99.0.2").CombinedOutput(); err != nil {
		t.Errorf("ping: %v\n%s", err, out)
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	<-s.done
}

// TestExampleStatic serves examples/static/site from a directory (unix),
// from a directory packed on the fly and from a mote mkimage image (hvt).
func TestExampleStatic(t *testing.T) {
	img := filepath.Join(tmpDir, "site.img")
	if got := mote(t, "mkimage", "-o", img, "./examples/static/site"); got.status != 0 {
		t.Fatalf("mkimage: %+v", got)
	}
	want, err := os.ReadFile("../../examples/static/site/docs/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	type staticCase struct {
		name string
		args func(port int) []string
	}
	cases := []staticCase{{"unix-dir", func(p int) []string {
		return []string{"run", "-t", "unix", "--fs", "site=./examples/static/site", "./examples/static", "--", "-addr", fmt.Sprintf("127.0.0.1:%d", p)}
	}}}
	for _, target := range confiningTargets(t) {
		for _, src := range []string{"./examples/static/site", img} {
			src, target := src, target
			cases = append(cases, staticCase{target + "-" + filepath.Base(src), func(p int) []string {
				return []string{"run", "-t", target, "--strict", "--fs", "site=" + src, "--net", "user", "-p", fmt.Sprintf("127.0.0.1:%d:8080", p), "./examples/static"}
			}})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t, "tcp")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			s := start(t, c.args(port)...)
			s.waitHTTP(t, addr)
			out, err := exec.Command("curl", "-sS", "--max-time", "20", "http://"+addr+"/docs/data.bin").Output()
			if err != nil || !bytes.Equal(out, want) {
				t.Fatalf("curl data.bin: %d bytes, %v (want %d identical bytes)", len(out), err, len(want))
			}
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "Static site") {
				t.Fatalf("index: %q", body)
			}
			syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
			<-s.done
		})
	}
	// A file that is not an image is refused before the guest starts.
	got := mote(t, "run", "-t", "hvt", "--fs", "site=/etc/hostname", "./examples/static")
	if got.status == 0 || !strings.Contains(got.stderr, "sectors") {
		t.Errorf("bad image: %+v", got)
	}
}

// TestExampleKVSurvivesKill kills the kv service with SIGKILL while
// clients write to it, again and again, and checks after each restart that
// every write the service acknowledged is there. (A kill leaves the host's
// page cache intact; guest/kv's fault-injection test covers lost and torn
// writes.)
func TestExampleKVSurvivesKill(t *testing.T) {
	trials := 12
	if testing.Short() {
		trials = 3
	}
	targets := []string{"unix", "spt"}
	if kvmOK() {
		targets = append(targets, "hvt")
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			lost, acked := kvKillTrials(t, target, trials)
			t.Logf("%s: %d kill -9 trials, %d acknowledged writes, %d lost", target, trials, acked, lost)
			if lost != 0 {
				t.Fatalf("%d acknowledged writes lost", lost)
			}
		})
	}
}

// kvKillTrials runs the trials and returns how many acknowledged writes
// were lost and how many there were.
func kvKillTrials(t *testing.T, target string, trials int) (lost, total int) {
	disk := filepath.Join(t.TempDir(), "kv.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(tmpDir, "kv."+target)
	if got := mote(t, "build", "-t", target, "-o", image, "./examples/kv"); got.status != 0 {
		t.Fatalf("build: %+v", got)
	}
	acked := map[string]string{}
	inflight := map[string]string{} // sent when the service was killed: it may have landed
	hc := &http.Client{Timeout: 10 * time.Second}
	for trial := 0; trial < trials; trial++ {
		port := freePort(t, "tcp")
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{"run", "-t", target, "--block", "kv=" + disk, image, "--", "-addr", addr}
		if target != "unix" {
			args = []string{"run", "-t", target, "--strict", "--block", "kv=" + disk, "--net", "user", "-p", addr + ":8080", image}
		}
		s := start(t, args...)
		s.waitHTTP(t, addr)
		// Everything acknowledged so far must be there.
		for k, v := range acked {
			resp, err := hc.Get("http://" + addr + "/kv/" + k)
			if err != nil {
				t.Fatalf("trial %d: %v\nmote's stderr:\n%s", trial, err, s.stderr)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch string(body) {
			case v:
			case inflight[k]:
				acked[k] = inflight[k] // it landed before the kill
			default:
				lost++
				t.Logf("trial %d: %s = %.30q, acknowledged %.30q", trial, k, body, v)
			}
		}
		inflight = map[string]string{}
		// Write from four clients; kill the service while they do.
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("c%d-k%d", c, i%25)
					v := fmt.Sprintf("trial %d client %d write %d %s", trial, c, i, strings.Repeat("v", i%700))
					mu.Lock()
					inflight[k] = v
					mu.Unlock()
					req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/kv/"+k, strings.NewReader(v))
					resp, err := hc.Do(req)
					if err != nil {
						return // killed: the value stays in flight
					}
					resp.Body.Close()
					mu.Lock()
					if resp.StatusCode == http.StatusNoContent {
						acked[k] = v
						total++
					}
					delete(inflight, k)
					mu.Unlock()
				}
			}(c)
		}
		time.Sleep(time.Duration(100+trial*37%400) * time.Millisecond)
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		close(stop)
		wg.Wait()
	}
	return lost, total
}
