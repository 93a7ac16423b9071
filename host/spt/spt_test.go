package spt

import (
	"fmt"
	"testing"
)

// The supervisor counts calls outside the ABI by name up to a bound, the
// rest together: a guest trying every call number must not grow mote.
func TestOutsideCountsBounded(t *testing.T) {
	var s supervisor
	for nr := range 10000 {
		s.countLocked(fmt.Sprintf("call (nr %d)", nr))
	}
	if n := len(s.counts); n > maxOutside+1 {
		t.Fatalf("%d distinct counts kept", n)
	}
	if s.counts["other calls"] != 10000-maxOutside {
		t.Errorf("other calls: %d", s.counts["other calls"])
	}
}
