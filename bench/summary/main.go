// Command summary writes the "at a glance" section of docs/benchmarks.md
// from the JSON records the suites leave in docs/results: Mote hvt against
// the strongest peer that runs on this machine (gVisor's runsc) and the
// floor (the plain process), goal by goal, each figure taken from the
// suite that measured both sides in one run.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moteos/mote/bench/report"
)

var (
	dir = flag.String("results", "docs/results", "the suites' JSON records")
	doc = flag.String("doc", "docs/benchmarks.md", "the page to update")
)

type summary struct{ Median, Min, Max float64 }

type peers struct {
	Date, Machine string
	Results       []struct {
		Name                    string
		FirstOutput, FirstHTTP  summary
		RSSMiB, PSSMiB, IdleCPU float64
		MemAvailMiB             float64
		MinRAMMiB               int
		ArtifactBytes           int64
	}
}

type net struct {
	Date string
	Rows []struct {
		Name                  string
		RPS, CPUMicros        float64
		ExitsPerReq, CloseRPS float64
		P99                   string
		// Medians of ratios measured within one round (0 in older results).
		VsNative, VsGVisor, VsGVisorMin, VsGVisorMax float64
	}
}

type density struct {
	Date                              string
	Instances                         int
	Answering                         int64
	StartsPerSec, PSSMiB, MemAvailMiB float64
	IdleCPU, MachineIdleCPU           float64
}

func load(name string, v any) bool {
	raw, err := os.ReadFile(filepath.Join(*dir, name))
	if err != nil {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		fmt.Fprintf(os.Stderr, "summary: %s: %v\n", name, err)
		return false
	}
	return true
}

func main() {
	flag.Parse()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("| goal (issue 7) | Mote hvt | gVisor runsc | native process | met? |\n|---|---|---|---|---|\n")

	var p peers
	if load("peers.json", &p) {
		get := func(prefix string) (int, bool) {
			for i, r := range p.Results {
				if strings.HasPrefix(r.Name, prefix) {
					return i, true
				}
			}
			return 0, false
		}
		h, okH := 0, false // the name alone: other rows are hvt variants
		for i, r := range p.Results {
			if r.Name == "mote -t hvt" {
				h, okH = i, true
			}
		}
		g, okG := get("gVisor")
		nat, okN := get("native")
		if okH && okG && okN {
			hr, gr, nr := p.Results[h], p.Results[g], p.Results[nat]
			sooner := gr.FirstHTTP.Median / hr.FirstHTTP.Median
			w("| first HTTP answer ≥ 5× sooner than gVisor, ≤ 25 ms | %.1f ms (%.1f× sooner than gVisor; %.1f× native) | %.1f ms | %.1f ms | %s |\n",
				hr.FirstHTTP.Median, sooner, hr.FirstHTTP.Median/nr.FirstHTTP.Median, gr.FirstHTTP.Median, nr.FirstHTTP.Median,
				met(sooner >= 5 && hr.FirstHTTP.Median <= 25))
			share := hr.PSSMiB / gr.PSSMiB
			w("| memory per idle instance ≤ 1/3 of gVisor's, ≤ 24 MiB (PSS; RSS in brackets) | %.1f MiB (%.1f) = %.2f of gVisor's | %.1f MiB (%.1f) | %.1f MiB (%.1f) | %s |\n",
				hr.PSSMiB, hr.RSSMiB, share, gr.PSSMiB, gr.RSSMiB, nr.PSSMiB, nr.RSSMiB, met(share <= 1.0/3 && hr.PSSMiB <= 24))
		}
	}
	var n net
	if load("net.json", &n) {
		var tap, gv, nat float64
		var tapCPU, gvCPU, natCPU, exits float64
		var vsG, vsN, vsGMin, vsGMax float64
		for _, r := range n.Rows {
			switch {
			case strings.HasPrefix(r.Name, "mote -t hvt, --net tap"):
				tap, tapCPU, exits = r.RPS, r.CPUMicros, r.ExitsPerReq
				vsG, vsN, vsGMin, vsGMax = r.VsGVisor, r.VsNative, r.VsGVisorMin, r.VsGVisorMax
			case strings.HasPrefix(r.Name, "gVisor"):
				gv, gvCPU = r.RPS, r.CPUMicros
			case strings.HasPrefix(r.Name, "native"):
				nat, natCPU = r.RPS, r.CPUMicros
			}
		}
		if tap > 0 && gv > 0 && nat > 0 {
			spread := ""
			if vsG == 0 { // results from before the rounds: one run
				vsG, vsN = tap/gv, tap/nat
			} else {
				spread = fmt.Sprintf(" (rounds %.2f–%.2f)", vsGMin, vsGMax)
			}
			w("| HTTP req/s ≥ 2× gVisor's (keep-alive; CPU µs/req in brackets) | %.0f (%.0f µs) = %.2f× gVisor%s, %.2f× native; %.3f exits/req | %.0f (%.0f µs) | %.0f (%.0f µs) | %s |\n",
				tap, tapCPU, vsG, spread, vsN, exits, gv, gvCPU, nat, natCPU, met(vsG >= 2))
		}
	}
	var d density
	if load("density.json", &d) {
		w("| ≥ 500 idle instances, each answering, idle CPU near zero | %d of %d answered; idle: %.2f%% of one core for all of them (%.4f%% each); %.1f MiB MemAvailable and %.1f MiB PSS each; %.1f starts/s | — | — | %s |\n",
			d.Answering, d.Instances, d.IdleCPU, d.IdleCPU/float64(d.Instances), d.MemAvailMiB, d.PSSMiB, d.StartsPerSec,
			met(d.Answering >= 500 && d.IdleCPU/float64(d.Instances) < 0.01))
	}
	w("\nSources: the peers, net and density sections below (docs/results/*.json), each measured with both sides in one run; \"near zero\" is read as under 0.01%% of a core per instance.\n")
	if err := report.Splice(*doc, "glance", b.String()); err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
