package netstack

import (
	"math"
	"reflect"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestMonotonic(t *testing.T) {
	// monotonic reads a MonotonicTime as one int64 of nanoseconds.
	if ty := reflect.TypeFor[tcpip.MonotonicTime](); ty.NumField() != 1 || ty.Field(0).Type.Kind() != reflect.Int64 {
		t.Fatalf("tcpip.MonotonicTime is no longer one int64: %v", ty)
	}
	for _, d := range []time.Duration{0, 1, 999, time.Second + 7, 100 * 24 * time.Hour, math.MaxInt64 / 2} {
		if got, want := monotonic(d), (tcpip.MonotonicTime{}).Add(d); got != want {
			t.Errorf("monotonic(%v) = %v, want %v", d, got, want)
		}
	}
}

// The clock runs at the standard clock's rate, forwards.
func TestClockNowMonotonic(t *testing.T) {
	c, std := newClock(), tcpip.NewStdClock()
	a, sa := c.NowMonotonic(), std.NowMonotonic()
	time.Sleep(20 * time.Millisecond)
	b, sb := c.NowMonotonic(), std.NowMonotonic()
	if !a.Before(b) {
		t.Fatalf("clock did not advance: %v then %v", a, b)
	}
	if d, sd := b.Sub(a), sb.Sub(sa); d < 20*time.Millisecond || d-sd > 50*time.Millisecond || sd-d > 50*time.Millisecond {
		t.Errorf("20 ms sleep: clock advanced %v, the standard clock %v", d, sd)
	}
}
