package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestABIFuzz runs the abifuzz guest (host/hvt/testdata/guests/abifuzz):
// random system calls with random and extreme arguments, through the
// runtime's rewritten sites and a SYSCALL of its own, on every confining
// target. Whatever the guest's calls get, mote must neither crash nor
// hang, and must end with the guest's own status (0: the guest made all
// its calls) holding bounded memory. Seeded, so that a failure repeats:
// MOTE_FUZZ_SEEDS=N (default 2) seeds from MOTE_FUZZ_SEED (default 1),
// MOTE_FUZZ_CALLS per seed (default 20000). The long run of docs/security.md:
//
//	MOTE_FUZZ_SEEDS=100 MOTE_FUZZ_CALLS=110000 go test -run TestABIFuzz -timeout 2h ./cmd/mote
func TestABIFuzz(t *testing.T) {
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	seeds, first, calls := env("MOTE_FUZZ_SEEDS", 2), env("MOTE_FUZZ_SEED", 1), env("MOTE_FUZZ_CALLS", 20000)
	bin := guestBinary(t, "abifuzz")
	for _, target := range confiningTargets(t) {
		var total, maxRSS int64
		start := time.Now()
		for seed := first; seed < first+seeds; seed++ {
			limit := time.Minute + time.Duration(calls)*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			cmd := exec.CommandContext(ctx, moteBin, "run", "-t", target, "-m", "64M", bin, "--", strconv.Itoa(seed), strconv.Itoa(calls))
			cmd.Dir = "../.."
			out, err := cmd.CombinedOutput()
			hung := ctx.Err() != nil
			cancel()
			if hung {
				t.Fatalf("%s seed %d: mote did not end within %v (a hang)\n%s", target, seed, limit, tailOf(string(out)))
			}
			if strings.Contains(string(out), "github.com/moteos/mote/host/") || strings.Contains(string(out), "moteos/mote/cmd/") {
				t.Fatalf("%s seed %d: mote itself failed\n%s", target, seed, tailOf(string(out)))
			}
			var made int64
			for _, l := range strings.Split(string(out), "\n") {
				fmt.Sscanf(l, "abifuzz: seed %d: %d calls made", new(int), &made)
			}
			if err != nil || made == 0 {
				t.Fatalf("%s seed %d: %v, %d calls made\n%s", target, seed, err, made, tailOf(string(out)))
			}
			total += made
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				maxRSS = max(maxRSS, ru.Maxrss) // KiB
			}
		}
		t.Logf("%s: %d calls over %d seeds in %v, mote's peak RSS %d MiB", target, total, seeds, time.Since(start).Round(time.Second), maxRSS>>10)
		if maxRSS > 512<<10 {
			t.Errorf("%s: mote's peak RSS %d MiB for a 64 MiB guest", target, maxRSS>>10)
		}
	}
}
