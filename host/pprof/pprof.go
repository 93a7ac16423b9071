package pprof

import (
	"encoding/binary"
	"io"
	"time"
)

// Frame is a program counter and where it is in the source.
type Frame struct {
	PC        uint64
	Function  string // empty if unknown
	File      string
	Line      int
	StartLine int // the function's first line, which profile-guided optimization needs
}

// Sample is a stack, innermost frame first, seen Count times.
type Sample struct {
	Stack []Frame
	Count int64
}

// Mapping is the program's code: where it is and the file it comes from.
type Mapping struct {
	Start, Limit uint64
	File         string
}

// Profile is a CPU profile: stacks sampled once every Period.
type Profile struct {
	Start    time.Time
	Duration time.Duration
	Period   time.Duration
	Mapping  Mapping
	Samples  []Sample
}

// Field numbers of profile.proto.
const (
	profSampleType = 1
	profSample     = 2
	profMapping    = 3
	profLocation   = 4
	profFunction   = 5
	profStrings    = 6
	profTime       = 9
	profDuration   = 10
	profPeriodType = 11
	profPeriod     = 12
)

// Write encodes p; each sample has two values, the count and the CPU
// time it stands for (count × Period).
func (p *Profile) Write(w io.Writer) error {
	e := encoder{strings: map[string]int64{"": 0}, table: []string{""}}
	var out []byte
	valueType := func(typ, unit string) []byte {
		var b []byte
		b = appendVarint(b, 1, uint64(e.str(typ)))
		return appendVarint(b, 2, uint64(e.str(unit)))
	}
	out = appendBytes(out, profSampleType, valueType("samples", "count"))
	out = appendBytes(out, profSampleType, valueType("cpu", "nanoseconds"))

	locs := map[uint64]uint64{} // PC → location id
	funcs := map[Frame]uint64{} // function and file → function id
	var locMsgs, funcMsgs [][]byte
	for _, s := range p.Samples {
		ids := make([]uint64, 0, len(s.Stack))
		for _, f := range s.Stack {
			id, ok := locs[f.PC]
			if !ok {
				id = uint64(len(locs) + 1)
				locs[f.PC] = id
				var l []byte
				l = appendVarint(l, 1, id)
				l = appendVarint(l, 2, 1) // the one mapping
				l = appendVarint(l, 3, f.PC)
				if f.Function != "" {
					key := Frame{Function: f.Function, File: f.File, StartLine: f.StartLine}
					fid, ok := funcs[key]
					if !ok {
						fid = uint64(len(funcs) + 1)
						funcs[key] = fid
						var fn []byte
						fn = appendVarint(fn, 1, fid)
						fn = appendVarint(fn, 2, uint64(e.str(f.Function)))
						fn = appendVarint(fn, 3, uint64(e.str(f.Function)))
						fn = appendVarint(fn, 4, uint64(e.str(f.File)))
						fn = appendVarint(fn, 5, uint64(f.StartLine))
						funcMsgs = append(funcMsgs, fn)
					}
					var line []byte
					line = appendVarint(line, 1, fid)
					line = appendVarint(line, 2, uint64(f.Line))
					l = appendBytes(l, 4, line)
				}
				locMsgs = append(locMsgs, l)
			}
			ids = append(ids, id)
		}
		var sm []byte
		sm = appendPacked(sm, 1, ids...)
		sm = appendPacked(sm, 2, uint64(s.Count), uint64(s.Count*int64(p.Period)))
		out = appendBytes(out, profSample, sm)
	}
	var m []byte
	m = appendVarint(m, 1, 1)
	m = appendVarint(m, 2, p.Mapping.Start)
	m = appendVarint(m, 3, p.Mapping.Limit)
	m = appendVarint(m, 5, uint64(e.str(p.Mapping.File)))
	for _, field := range []int{7, 8, 9} { // has functions, file names, line numbers
		m = appendVarint(m, field, 1)
	}
	out = appendBytes(out, profMapping, m)
	for _, l := range locMsgs {
		out = appendBytes(out, profLocation, l)
	}
	for _, f := range funcMsgs {
		out = appendBytes(out, profFunction, f)
	}
	out = appendVarint(out, profTime, uint64(p.Start.UnixNano()))
	out = appendVarint(out, profDuration, uint64(p.Duration))
	out = appendBytes(out, profPeriodType, valueType("cpu", "nanoseconds"))
	out = appendVarint(out, profPeriod, uint64(p.Period))
	for _, s := range e.table { // last: every string is known by now
		out = appendBytes(out, profStrings, []byte(s))
	}
	_, err := w.Write(out)
	return err
}

// encoder holds the profile's string table.
type encoder struct {
	strings map[string]int64
	table   []string
}

func (e *encoder) str(s string) int64 {
	i, ok := e.strings[s]
	if !ok {
		i = int64(len(e.table))
		e.strings[s] = i
		e.table = append(e.table, s)
	}
	return i
}

// The protobuf wire format: a key (field number and type), then a varint
// or a length and bytes.

func appendVarint(b []byte, field int, v uint64) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, v)
}

func appendBytes(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendPacked(b []byte, field int, vs ...uint64) []byte {
	var p []byte
	for _, v := range vs {
		p = binary.AppendUvarint(p, v)
	}
	return appendBytes(b, field, p)
}
