package pprof

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestReadByPprof encodes a small profile and reads it back with pprof's
// own parser, which also checks its consistency.
func TestReadByPprof(t *testing.T) {
	main := Frame{PC: 0x401010, Function: "main.main", File: "/src/main.go", Line: 7}
	hot := Frame{PC: 0x401200, Function: "main.hot", File: "/src/main.go", Line: 12, StartLine: 10}
	p := Profile{
		Start: time.Unix(1700000000, 0), Duration: 2 * time.Second, Period: 10 * time.Millisecond,
		Mapping: Mapping{Start: 0x400000, Limit: 0x500000, File: "/tmp/app.hvt"},
		Samples: []Sample{
			{Stack: []Frame{hot, main}, Count: 30},
			{Stack: []Frame{{PC: 0x200010}, main}, Count: 2}, // an unknown frame
		},
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := profile.Parse(&buf)
	if err != nil {
		t.Fatalf("pprof cannot read it: %v", err)
	}
	if got.Period != int64(10*time.Millisecond) || got.PeriodType.Type != "cpu" || got.DurationNanos != int64(2*time.Second) {
		t.Errorf("period %d %v, duration %d", got.Period, got.PeriodType, got.DurationNanos)
	}
	if len(got.SampleType) != 2 || got.SampleType[0].Type != "samples" || got.SampleType[1].Unit != "nanoseconds" {
		t.Errorf("sample types %v", got.SampleType)
	}
	if len(got.Mapping) != 1 || got.Mapping[0].File != "/tmp/app.hvt" || got.Mapping[0].Start != 0x400000 {
		t.Errorf("mapping %v", got.Mapping)
	}
	if len(got.Sample) != 2 {
		t.Fatalf("%d samples, want 2", len(got.Sample))
	}
	s := got.Sample[0]
	if s.Value[0] != 30 || s.Value[1] != 30*int64(10*time.Millisecond) {
		t.Errorf("values %v", s.Value)
	}
	if len(s.Location) != 2 || s.Location[0].Address != hot.PC {
		t.Fatalf("locations %v", s.Location)
	}
	l := s.Location[0].Line[0]
	if l.Function.Name != "main.hot" || l.Function.Filename != "/src/main.go" || l.Line != 12 || l.Function.StartLine != 10 {
		t.Errorf("innermost frame %v %d", l.Function, l.Line)
	}
	// The shared caller is one location and one function.
	if got.Sample[1].Location[1] != s.Location[1] || len(got.Function) != 2 || len(got.Location) != 3 {
		t.Errorf("%d functions, %d locations; want 2 and 3, the caller shared", len(got.Function), len(got.Location))
	}
	if len(got.Sample[1].Location[0].Line) != 0 {
		t.Errorf("the unknown frame has lines: %v", got.Sample[1].Location[0].Line)
	}
}
