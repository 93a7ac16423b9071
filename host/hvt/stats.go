package hvt

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// stats counts what the guest costs: every system call (each one is an
// exit on this design), exceptions, page faults, kicks and signals. Exits
// are what KVM charges for, so these numbers are the first thing to read
// when a guest is slow (mote run --stats).
type stats struct {
	mu      sync.Mutex
	sys     map[uint64]*sysStat
	outside int // distinct call numbers outside the ABI in sys
	// calls the ABI has whose arguments put them outside it, by
	// description (a few fixed ones: clone without CLONE_THREAD)
	outsideArgs map[string]int64
	exc         [32]atomic.Int64
	boot        time.Duration

	pageFaults atomic.Int64
	kicks      atomic.Int64
	signals    atomic.Int64
}

type sysStat struct {
	count int64
	total time.Duration
}

func newStats() *stats { return &stats{sys: map[uint64]*sysStat{}} }

func (s *stats) count(c *atomic.Int64) { c.Add(1) }

func (s *stats) countException(v int) { s.exc[v].Add(1) }

func (s *stats) bootDone(d time.Duration) { s.boot = d }

// maxOutside bounds the distinct calls outside the ABI counted by number:
// a guest looping over call numbers would otherwise grow the table, and
// the tender, without end (a review saw 630 MB). The rest are counted
// together as otherCalls.
const maxOutside = 64

// otherCalls is the row for calls outside the ABI past maxOutside.
const otherCalls = ^uint64(0)

func (s *stats) syscall(nr uint64, d time.Duration) {
	s.mu.Lock()
	st := s.sys[nr]
	if st == nil {
		if _, known := sysTable[nr]; !known {
			if s.outside == maxOutside {
				nr, st = otherCalls, s.sys[otherCalls]
			} else {
				s.outside++
			}
		}
		if st == nil {
			st = &sysStat{}
			s.sys[nr] = st
		}
	}
	st.count++
	st.total += d
	s.mu.Unlock()
}

// outsideCall counts a call the ABI has that its arguments put outside.
func (s *stats) outsideCall(desc string) {
	s.mu.Lock()
	if s.outsideArgs == nil {
		s.outsideArgs = map[string]int64{}
	}
	s.outsideArgs[desc]++
	s.mu.Unlock()
}

// outsideABI lists the system calls answered ENOSYS, or "".
func (s *stats) outsideABI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for desc, n := range s.outsideArgs {
		out = append(out, fmt.Sprintf("%s ×%d", desc, n))
	}
	for nr, st := range s.sys {
		switch _, ok := sysTable[nr]; {
		case nr == otherCalls:
			out = append(out, fmt.Sprintf("other calls ×%d", st.count))
		case !ok:
			out = append(out, fmt.Sprintf("%s (nr %d) ×%d", sysName(nr), nr, st.count))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func (s *stats) write(w io.Writer, wall time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type row struct {
		nr uint64
		st *sysStat
	}
	var rows []row
	var calls int64
	for nr, st := range s.sys {
		rows = append(rows, row{nr, st})
		calls += st.count
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].st.count > rows[j].st.count })
	var excs int64
	for i := range s.exc {
		excs += s.exc[i].Load()
	}
	fmt.Fprintf(w, "mote: stats: wall %v, tender setup %v\n", wall.Round(time.Microsecond), s.boot.Round(time.Microsecond))
	fmt.Fprintf(w, "mote: stats: exits: %d system calls, %d exceptions (%d page faults bound memory), %d kicks, %d signals delivered\n",
		calls, excs, s.pageFaults.Load(), s.kicks.Load(), s.signals.Load())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "syscall\tnr\tcalls\ttender µs total\tµs/call\t")
	for _, r := range rows {
		name, nr := sysName(r.nr), fmt.Sprint(r.nr)
		if r.nr == otherCalls {
			name, nr = "(other calls outside the ABI)", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t\n", name, nr, r.st.count,
			r.st.total.Microseconds(), float64(r.st.total.Nanoseconds())/float64(r.st.count)/1e3)
	}
	for v := range s.exc {
		if n := s.exc[v].Load(); n > 0 {
			fmt.Fprintf(tw, "#%s\t%d\t%d\t\t\t\n", vectorName(v), v, n)
		}
	}
	tw.Flush()
}

// tracer writes one line per event; lines from different threads do not
// interleave.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func (tr *tracer) printf(format string, args ...any) {
	tr.mu.Lock()
	fmt.Fprintf(tr.w, "mote: trace: "+format+"\n", args...)
	tr.mu.Unlock()
}
