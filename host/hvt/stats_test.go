package hvt

import (
	"strings"
	"testing"
)

// Calls outside the ABI are counted by number up to a bound, the rest
// together: a guest looping over every call number cannot grow the table
// (or the report) without end.
func TestOutsideCountsBounded(t *testing.T) {
	s := newStats()
	for nr := uint64(1 << 20); nr < 1<<20+100_000; nr++ { // none in the ABI
		s.syscall(nr, 0)
	}
	s.syscall(0, 0) // read: in the ABI, counted as itself
	if n := len(s.sys); n != maxOutside+2 {
		t.Errorf("%d rows, want %d", n, maxOutside+2)
	}
	if got := s.sys[otherCalls].count; got != 100_000-maxOutside {
		t.Errorf("other calls: %d, want %d", got, 100_000-maxOutside)
	}
	if r := s.outsideABI(); len(r) > 64*40 || !strings.Contains(r, "other calls ×") {
		t.Errorf("report of %d bytes: %.200s", len(r), r)
	}
	var b strings.Builder
	s.write(&b, 0)
	if !strings.Contains(b.String(), "(other calls outside the ABI)") {
		t.Errorf("stats do not show the other calls:\n%s", b.String())
	}
}
