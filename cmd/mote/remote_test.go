package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRemoteNATSServer runs a real program that never heard of Mote,
// fetched from the module proxy as go run pkg@version fetches it:
// nats-server, with a Go NATS client (nats.go) publishing and subscribing
// through the published port.
func TestRemoteNATSServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server from the module proxy")
	}
	const pkg = "github.com/nats-io/nats-server/v2@v2.15.3"
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			port := freePort(t, "tcp")
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			s := start(t, "run", "-t", target, "--strict", "-m", "256M", "--net", "user", "-p", addr+":4222", pkg, "--", "-p", "4222")
			var nc *nats.Conn
			s.waitFor(t, addr, func() (err error) {
				nc, err = nats.Connect("nats://"+addr, nats.Timeout(5*time.Second), nats.NoReconnect())
				return err
			})
			defer nc.Close()
			sub, err := nc.SubscribeSync("greet.*")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				if err := nc.Publish(fmt.Sprintf("greet.%d", i), []byte(fmt.Sprintf("hello %d", i))); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 100 {
				m, err := sub.NextMsg(10 * time.Second)
				if err != nil {
					t.Fatalf("message %d: %v\nserver:\n%s", i, err, s.stderr)
				}
				if want := fmt.Sprintf("hello %d", i); string(m.Data) != want || m.Subject != fmt.Sprintf("greet.%d", i) {
					t.Fatalf("message %d: %s %q", i, m.Subject, m.Data)
				}
			}
			// Request and reply, through the server.
			rs, err := nc.Subscribe("echo", func(m *nats.Msg) { m.Respond(append([]byte("re: "), m.Data...)) })
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Unsubscribe()
			r, err := nc.Request("echo", []byte("ping"), 10*time.Second)
			if err != nil || string(r.Data) != "re: ping" {
				t.Fatalf("request: %v %v", r, err)
			}
			nc.Close()
			s.stop(t)
			out := s.stdout.String() + s.stderr.String()
			if !strings.Contains(out, "Server is ready") || strings.Contains(out, "outside the Mote ABI") {
				t.Errorf("server output:\n%s", out)
			}
		})
	}
}

// TestRemoteGRPC runs gRPC's own example server, unmodified and fetched
// at a version, in a unikernel, and asks it with gRPC's example client
// built for the host (mote build -t unix).
func TestRemoteGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gRPC's examples from the module proxy")
	}
	const examples = "google.golang.org/grpc/examples/helloworld/%s@v0.0.0-20260825154716-030ee8becb20"
	client := filepath.Join(t.TempDir(), "greeter_client")
	if o := mote(t, "build", "-t", "unix", "-o", client, fmt.Sprintf(examples, "greeter_client")); o.status != 0 {
		t.Fatalf("building the client: %d\n%s%s", o.status, o.stdout, o.stderr)
	}
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s := start(t, "run", "-t", target, "--strict", "--net", "user", "-p", addr+":50051", fmt.Sprintf(examples, "greeter_server"))
			var out []byte
			s.waitFor(t, addr, func() (err error) {
				out, err = exec.Command(client, "-addr", addr, "-name", "mote").CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			if !strings.Contains(string(out), "Greeting: Hello mote") {
				t.Errorf("client: %s", out)
			}
			s.cmd.Process.Signal(os.Interrupt) // the example has no handler: it dies of SIGINT
			<-s.done
			if o := s.stderr.String(); !strings.Contains(o, "Received: mote") || !strings.Contains(o, "server listening at [::]:50051") {
				t.Errorf("server:\n%s%s", s.stdout, o)
			}
		})
	}
}

// TestRemoteCaddy runs caddy, unmodified and fetched at a version, in a
// unikernel: caddy file-server over a read-only mounted directory, fetched
// byte for byte with curl and Go's client, and caddy respond.
func TestRemoteCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds caddy from the module proxy")
	}
	site := t.TempDir()
	index := []byte("<h1>served by caddy in a unikernel</h1>\n")
	os.WriteFile(filepath.Join(site, "index.html"), index, 0o644)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(site, "big.bin"), big, 0o644)
	for _, target := range confiningTargets(t) {
		t.Run(target, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "caddy")
			if o := mote(t, "build", "-t", target, "-o", image, "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9"); o.status != 0 {
				t.Fatalf("mote build: %d\n%s%s", o.status, o.stdout, o.stderr)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s := start(t, "run", "-t", target, "--strict", "-m", "256M", "--net", "user",
				"-p", addr+":8080", "-v", site+":/srv:ro", image, "--", "file-server", "--root", "/srv", "--listen", ":8080")
			s.waitHTTP(t, addr)
			for path, want := range map[string][]byte{"/": index, "/big.bin": big} {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, want) || resp.Header.Get("Server") != "Caddy" {
					t.Fatalf("GET %s: %d bytes, %v, Server %q", path, len(got), err, resp.Header.Get("Server"))
				}
			}
			t.Run("curl", func(t *testing.T) {
				needTool(t, "curl", "curl")
				out, err := exec.Command("curl", "-sS", "--max-time", "20", "http://"+addr+"/").Output()
				if err != nil || !bytes.Equal(out, index) {
					t.Fatalf("curl: %v %q", err, out)
				}
			})
			s.stop(t)

			addr = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s = start(t, "run", "-t", target, "--strict", "-m", "256M", "--net", "user",
				"-p", addr+":8081", image, "--", "respond", "--listen", ":8081", "hello from caddy respond")
			s.waitHTTP(t, addr)
			resp, err := http.Get("http://" + addr + "/anything")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "hello from caddy respond" {
				t.Fatalf("caddy respond: %q", got)
			}
			s.stop(t)
		})
	}
}
