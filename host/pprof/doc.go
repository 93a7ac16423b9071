// Package pprof writes sampled CPU profiles in the pprof format
// (profile.proto, read by go tool pprof), with their stacks already
// symbolized: only the messages such a profile needs.
//
// github.com/google/pprof/profile writes the same, but its package
// initialisation (the regular expressions of its legacy text formats) cost
// every mote start 0.37 ms and 150 KB of heap, profiling or not; the
// tender needs only the encoder.
package pprof
