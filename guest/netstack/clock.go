package netstack

import (
	"time"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// clock is the stack's clock: tcpip's standard one, with a cheaper
// monotonic reading. netstack reads the monotonic clock many times a
// segment (round-trip times, timers, RACK, neighbour confirmations), and
// the standard clock turns each reading into a tcpip.MonotonicTime with
// MonotonicTime.Add, which goes through time.Unix, Time.Add and Time.Sub:
// about as long as reading the clock itself, 4% of a guest's CPU under
// HTTP load. This clock builds the value from nanoseconds directly.
type clock struct {
	tcpip.Clock // Now and AfterFunc
	base        time.Time
}

func newClock() *clock { return &clock{Clock: tcpip.NewStdClock(), base: time.Now()} }

// NowMonotonic implements tcpip.Clock: the time since the clock was made,
// as the standard clock counts it.
func (c *clock) NowMonotonic() tcpip.MonotonicTime { return monotonic(time.Since(c.base)) }

// monotonic returns the reading d after the zero MonotonicTime, which is
// MonotonicTime{}.Add(d) for any d a running stack sees. It relies on
// MonotonicTime holding just its nanoseconds: the size check below fails
// the build if gVisor changes that, and TestMonotonic compares with Add.
func monotonic(d time.Duration) tcpip.MonotonicTime {
	return *(*tcpip.MonotonicTime)(unsafe.Pointer(&d))
}

// A MonotonicTime is one int64.
var _ = [1]struct{}{}[unsafe.Sizeof(tcpip.MonotonicTime{})-unsafe.Sizeof(time.Duration(0))]
