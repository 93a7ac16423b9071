package abi_test

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/moteos/mote/host/hvt"
	"github.com/moteos/mote/host/spt"
	"github.com/moteos/mote/host/sysnames"
)

// docs/abi.md is the Mote ABI's one table: every call the hvt tender
// serves has its row in "System calls", every call an spt guest may make
// is named in "spt: the same ABI", and neither documents a call the code
// does not take.
func TestDocumentedCallsAreTheServedOnes(t *testing.T) {
	b, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	section := func(start, end string) string {
		i := strings.Index(doc, start)
		j := strings.Index(doc[i:], end)
		if i < 0 || j < 0 {
			t.Fatalf("docs/abi.md has no section %q", start)
		}
		return doc[i : i+j]
	}

	// hvt: "| `name` (nr), `name` (nr) | …" rows.
	documented := map[uint64]string{}
	row := regexp.MustCompile("(?m)^\\| ([^|]*) \\|")
	call := regexp.MustCompile("`([a-z0-9_]+)` \\(([0-9]+)\\)")
	for _, r := range row.FindAllStringSubmatch(section("## System calls", "## spt:"), -1) {
		for _, c := range call.FindAllStringSubmatch(r[1], -1) {
			nr, _ := strconv.ParseUint(c[2], 10, 64)
			documented[nr] = c[1]
		}
	}
	served := hvt.Calls()
	compare(t, "hvt", served, documented)

	// spt: the unconditional list and the first column of the table.
	sptDoc := section("## spt: the same ABI", "## Exits")
	names := map[string]bool{}
	if i := strings.Index(sptDoc, "Allowed without conditions"); i >= 0 {
		para := sptDoc[i:]
		para = para[strings.Index(para, ":\n")+2 : strings.Index(para, "\n\n")]
		for _, n := range strings.Split(strings.ReplaceAll(para, "\n", " "), ",") {
			names[strings.Trim(n, " .")] = true
		}
	}
	for _, r := range row.FindAllStringSubmatch(sptDoc, -1) {
		for _, n := range strings.Split(r[1], ",") {
			names[strings.TrimSpace(n)] = true
		}
	}
	sptDocumented := map[uint64]string{}
	for nr := uint64(0); nr < 512; nr++ {
		if n := sysnames.Name(nr); names[n] {
			sptDocumented[nr] = n
		}
	}
	allowed, err := spt.Calls()
	if err != nil {
		t.Fatal(err)
	}
	sptServed := map[uint64]string{}
	for nr := range allowed {
		sptServed[uint64(nr)] = sysnames.Name(uint64(nr))
	}
	compare(t, "spt", sptServed, sptDocumented)
}

func compare(t *testing.T, target string, served, documented map[uint64]string) {
	t.Helper()
	var missing, extra []string
	for nr, n := range served {
		if _, ok := documented[nr]; !ok {
			missing = append(missing, n)
		}
	}
	for nr, n := range documented {
		if _, ok := served[nr]; !ok {
			extra = append(extra, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%s serves calls docs/abi.md does not list: %v", target, missing)
	}
	if len(extra) > 0 {
		t.Errorf("docs/abi.md lists calls %s does not serve: %v", target, extra)
	}
}
