package hvt

import (
	"io"
	"testing"
)

// oomWatch sees Go's out-of-memory line however the console's writes
// cut it, and nothing else.
func TestOOMWatch(t *testing.T) {
	for _, c := range []struct {
		writes []string
		want   bool
	}{
		{[]string{"fatal error: runtime: out of memory\n"}, true},
		{[]string{"fatal error: runt", "ime: out of mem", "ory\n"}, true},
		{[]string{"fatal error: ", "r", "untime: out of memory"}, true},
		{[]string{"panic: something else\n", "goroutine 1 [running]:\n"}, false},
		{[]string{"runtime: out of"}, false},
	} {
		w := &oomWatch{w: io.Discard}
		for _, s := range c.writes {
			w.Write([]byte(s))
		}
		if w.saw.Load() != c.want {
			t.Errorf("%q: saw %v, want %v", c.writes, w.saw.Load(), c.want)
		}
	}
}
