// Command stdlibbench runs standard-library packages' own tests
// (-test.short) natively and in a unikernel through mote test (go test
// with Mote's net overlay, whose loopback network the tests' sockets use,
// and mote exec as the runner), and reports per package how many
// top-level tests passed each way. The Go installation is mounted
// read-only at its own path, so a test's testdata/ is there.
//
//	go run ./bench/stdlibbench -mote bench/out/mote -t spt [-json FILE] [PKG ...]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

var defaultPkgs = []string{
	"archive/tar", "archive/zip", "bufio", "bytes", "compress/gzip", "crypto/sha256", "crypto/tls",
	"encoding/json", "io/fs", "log/slog", "net/http", "net/netip", "net/url", "os", "path/filepath",
	"regexp", "sort", "strconv", "strings", "testing/fstest", "text/template", "time",
}

// result is one package's counts.
type result struct {
	Package        string
	Native, Target int // top-level tests passed
	NativeFail     int
	TargetFail     int
	FailedOnTarget []string `json:",omitempty"` // passed natively, not on the target
	Seconds        float64
}

func main() {
	mote := flag.String("mote", "mote", "the mote command")
	target := flag.String("t", "spt", "target")
	out := flag.String("json", "", "write the results as JSON to this file")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = defaultPkgs
	}
	var results []result
	var totN, totT int
	for _, p := range pkgs {
		start := time.Now()
		native := run(p, "", "")
		onTarget := run(p, *mote, *target)
		r := result{Package: p, Seconds: time.Since(start).Seconds()}
		for name, ok := range native {
			if ok {
				r.Native++
				if !onTarget[name] {
					r.FailedOnTarget = append(r.FailedOnTarget, name)
				}
			} else {
				r.NativeFail++
			}
		}
		for name, ok := range onTarget {
			if ok && native[name] {
				r.Target++
			} else if !ok {
				r.TargetFail++
			}
		}
		sort.Strings(r.FailedOnTarget)
		totN += r.Native
		totT += r.Target
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%-16s native %4d  %s %4d  (%.0fs)\n", p, r.Native, *target, r.Target, r.Seconds)
	}
	fmt.Printf("| package | passed natively | passed on %s | of those, not on %s |\n|---|---|---|---|\n", *target, *target)
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %s |\n", r.Package, r.Native, r.Target, strings.Join(r.FailedOnTarget, ", "))
	}
	fmt.Printf("| **all** | %d | %d (%.1f%%) | |\n", totN, totT, 100*float64(totT)/float64(max(totN, 1)))
	if *out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		os.WriteFile(*out, b, 0o644)
	}
}

// run runs p's tests natively (mote "") or with mote test on target, and
// returns each top-level test's outcome.
func run(p, mote, target string) map[string]bool {
	args := []string{"-short", "-count=1", "-json", "-timeout=5m", p}
	cmd := exec.Command("go", append([]string{"test"}, args...)...)
	if mote != "" {
		cmd = exec.Command(mote, append([]string{"test", "-t", target}, args...)...)
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOAMD64=v1")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Run() // a failing package still reports its tests
	res := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct{ Action, Test string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		switch ev.Action {
		case "pass":
			res[ev.Test] = true
		case "fail":
			res[ev.Test] = false
		}
	}
	return res
}
