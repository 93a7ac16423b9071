package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// callVDSO calls a vDSO function with the C calling convention
// (vdso_amd64.s).
func callVDSO(fn, a0, a1 uintptr) uintptr

// vdsoFunc finds a function of the vDSO the kernel (or the tender) gave
// the process, through AT_SYSINFO_EHDR, as the runtime and a C library
// do; 0 if there is none.
func vdsoFunc(name string) uintptr {
	auxv, err := unix.Auxv()
	if err != nil {
		return 0
	}
	var base uintptr
	for _, kv := range auxv {
		if kv[0] == 33 { // AT_SYSINFO_EHDR
			base = kv[1]
		}
	}
	if base == 0 {
		return 0
	}
	// The image is as long as its section headers reach.
	hdr := unsafe.Slice((*byte)(unsafe.Pointer(base)), 64)
	le := binary.LittleEndian
	size := le.Uint64(hdr[40:]) + uint64(le.Uint16(hdr[58:]))*uint64(le.Uint16(hdr[60:]))
	f, err := elf.NewFile(bytes.NewReader(unsafe.Slice((*byte)(unsafe.Pointer(base)), size)))
	if err != nil {
		return 0
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return 0
	}
	var load uint64 // the first PT_LOAD's address: symbols are relative to it
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			load = p.Vaddr
			break
		}
	}
	for _, s := range syms {
		if s.Name == name && s.Version == "LINUX_2.6" && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return base + uintptr(s.Value-load)
		}
	}
	return 0
}

// vdsoClocks calls gettimeofday and time in the vDSO; Linux's has both.
func vdsoClocks() {
	gtod, tm := vdsoFunc("__vdso_gettimeofday"), vdsoFunc("__vdso_time")
	say("vdso gettimeofday", "present %v", gtod != 0)
	say("vdso time", "present %v", tm != 0)
	if gtod != 0 {
		var tv unix.Timeval
		tz := [2]int32{5, 5}
		r := callVDSO(gtod, uintptr(unsafe.Pointer(&tv)), uintptr(unsafe.Pointer(&tz[0])))
		say("vdso gettimeofday", "returns %d, now %v, time zone %v", r, near(time.Unix(tv.Sec, tv.Usec*1000)), tz)
	}
	if tm != 0 {
		var t int64
		r := callVDSO(tm, uintptr(unsafe.Pointer(&t)), 0)
		say("vdso time", "now %v, stored %v", near(time.Unix(int64(r), 0)), t == int64(r))
		say("vdso time without a pointer", "now %v", near(time.Unix(int64(callVDSO(tm, 0, 0)), 0)))
	}
}
