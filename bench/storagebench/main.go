// Command storagebench measures block I/O, a static site and the kv
// service's crash safety, natively (mote -t unix) and on hvt, in one run,
// and writes the results into docs/benchmarks.md between the storage
// markers.
//
//	storagebench -mote PATH -dir BUILD_DIR [-trials 200]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moteos/mote/bench/netns"
	"github.com/moteos/mote/bench/probe"
	"github.com/moteos/mote/bench/report"
)

var (
	moteBin = flag.String("mote", "", "the mote binary")
	dir     = flag.String("dir", "", "build directory: blockio.{unix,hvt}, static.{unix,hvt}, kv.hvt, site.img")
	doc     = flag.String("doc", "docs/benchmarks.md", "the page to update")
	trials  = flag.Int("trials", 200, "kill -9 trials of the kv service")
)

func main() {
	flag.Parse()
	g := func(n string) string { return filepath.Join(*dir, n) }
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))

	disk := g("disk.img")
	os.WriteFile(disk, bytes.Repeat([]byte{1}, 64<<20), 0o644)
	nat := blockio(*moteBin, "run", "-t", "unix", "--block", "disk="+disk, g("blockio.unix"))
	hvt := blockio(*moteBin, "run", "--block", "disk="+disk, g("blockio.hvt"))
	b.WriteString("### Block device (64 MiB file, host page cache warm)\n\n| operation | native (mote -t unix) | hvt | hvt vs native |\n|---|---|---|---|\n")
	for _, k := range []string{"seq-read", "rand-read-4k", "rand-write-4k", "write+sync-4k"} {
		fmt.Fprintf(&b, "| %s | %s | %s | %.3f× |\n", k, nat[k].s, hvt[k].s, hvt[k].v/nat[k].v)
	}

	// Each server is measured in three rounds, the servers interleaved in
	// each; the table gives the median round.
	b.WriteString("\n### Static site (examples/static, `wrk -t2 -c32 -d5s` on a 56-byte file; median of 3 interleaved rounds)\n\n| server | req/s | vs native |\n|---|---|---|\n")
	site := "./examples/static/site"
	type server struct {
		name string
		run  func() float64
	}
	servers := []server{
		{"native (mote -t unix, from the directory)", func() float64 {
			return wrkServe("127.0.0.1:18190", exec.Command(*moteBin, "run", "-t", "unix", "--fs", "site="+site, g("static.unix"), "--", "-addr", "127.0.0.1:18190"))
		}},
		{"hvt, tar image on a block device, --net user", func() float64 {
			return wrkServe("127.0.0.1:18191", exec.Command(*moteBin, "run", "--fs", "site="+g("site.img"), "--net", "user", "-p", "127.0.0.1:18191:8080", g("static.hvt")))
		}},
	}
	// Over TAP, the guest's own stack is the only one on the path (user
	// networking adds a second netstack in the tender).
	if ns, err := netns.New(fmt.Sprintf("mote-storage-%d", os.Getpid())); err == nil {
		defer ns.Remove()
		for _, t := range []string{"hvt", "spt"} {
			servers = append(servers, server{t + ", tar image on a block device, --net tap", func() float64 {
				return wrkServeIn(ns, netns.Guest+":8080", ns.Command(*moteBin, "run", "-t", t, "--fs", "site="+g("site.img"), "--net", ns.TapArg(), g("static.hvt")))
			}})
		}
	}
	rounds := make([][]float64, len(servers))
	for round := 0; round < 3; round++ {
		for i, s := range servers {
			rounds[i] = append(rounds[i], s.run())
		}
	}
	native := report.Median(rounds[0])
	for i, s := range servers {
		m := report.Median(rounds[i])
		fmt.Fprintf(&b, "| %s | %.0f | %.3f× |\n", s.name, m, m/native)
	}

	lost, acked, ran, unread := kvKills(g("kv.hvt"), *trials)
	fmt.Fprintf(&b, "\n### kv crash safety\n\n%d kill -9 trials of examples/kv on hvt (SIGKILL of the tender at a random moment while a client writes): %d acknowledged writes, **%d lost** (%d checks got no answer, three tries each), 0 corrupt reads possible by construction (checksums). The device-level guarantee — dropped, torn and reordered unsynced writes — is tested by guest/kv's fault-injection test (400 crashes).\n\n", ran, acked, lost, unread)
	if err := report.Splice(*doc, "storage", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

type val struct {
	v float64
	s string
}

func blockio(name string, args ...string) map[string]val {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "blockio:", err)
	}
	m := map[string]val{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 {
			v, _ := strconv.ParseFloat(f[1], 64)
			m[f[0]] = val{v, f[1] + " " + strings.Join(f[2:], " ")}
		}
	}
	return m
}

func wrkServe(addr string, cmd *exec.Cmd) float64 { return wrkServeIn(nil, addr, cmd) }

// wrkServeIn is wrkServe with wrk and curl run in ns when it is set.
func wrkServeIn(ns *netns.NS, addr string, cmd *exec.Cmd) float64 {
	client := func(name string, args ...string) *exec.Cmd {
		if ns != nil {
			return ns.Command(name, args...)
		}
		return exec.Command(name, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	url := "http://" + addr + "/docs/guide.txt"
	// An answer, not a connection: a published port accepts before the
	// guest serves.
	for deadline := time.Now().Add(2 * time.Minute); client("curl", "-sf", "-o", "/dev/null", "--max-time", "2", url).Run() != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0
		}
	}
	client("wrk", "-t2", "-c32", "-d1s", url).Run()
	out, _ := client("wrk", "-t2", "-c32", "-d5s", url).Output()
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	return 0
}

// kvKills runs the kv service, writes to it, kills it with SIGKILL, and on
// each restart checks every acknowledged write. A write counts as lost only
// when the restarted service answers for its key with something else; a
// read that gets no answer at all is retried, and the trial stops there
// if it still gets none (unread).
func kvKills(image string, n int) (lost, acked, ran, unread int) {
	disk := filepath.Join(filepath.Dir(image), "kv.img")
	os.WriteFile(disk, make([]byte, 1<<20), 0o644)
	want, inflight := map[string]string{}, map[string]string{}
	hc := &http.Client{Timeout: 10 * time.Second}
	for trial := 0; trial < n; trial++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 18200+trial%50)
		cmd := exec.Command(*moteBin, "run", "--block", "kv="+disk, "--net", "user", "-p", addr+":8080", image)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if cmd.Start() != nil || !probe.HTTP("http://"+addr+"/kv/", 2*time.Minute, 20*time.Millisecond, probe.Any) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			continue
		}
		ran++
		for k, v := range want {
			var resp *http.Response
			var err error
			for try := 0; try < 3; try++ {
				if resp, err = hc.Get("http://" + addr + "/kv/" + k); err == nil {
					break
				}
			}
			if err != nil {
				unread++
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch string(body) {
			case v:
			case inflight[k]:
				want[k] = inflight[k]
			default:
				lost++
			}
		}
		inflight = map[string]string{}
		deadline := time.Now().Add(time.Duration(50+trial*29%300) * time.Millisecond)
		for i := 0; time.Now().Before(deadline); i++ {
			k, v := fmt.Sprintf("k%d", i%40), fmt.Sprintf("trial %d write %d %s", trial, i, strings.Repeat("x", i%500))
			if i == 2+trial%17 {
				go syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // racing the request in flight
			}
			inflight[k] = v
			req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/kv/"+k, strings.NewReader(v))
			resp, err := hc.Do(req)
			if err != nil {
				break
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				want[k] = v
				acked++
			}
			delete(inflight, k)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	return lost, acked, ran, unread
}
