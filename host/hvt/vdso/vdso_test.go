package vdso

import (
	"bytes"
	"debug/elf"
	"testing"
)

// The image must parse as an ELF shared object whose dynamic symbol table
// names __vdso_clock_gettime at the code offset, with version LINUX_2.6
// (the Go runtime refuses a vDSO symbol of another version).
func TestImageParses(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(Image()))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	if len(syms) != 1 || syms[0].Name != "__vdso_clock_gettime" || syms[0].Value != ClockGettimeOffset {
		t.Fatalf("dynamic symbols = %+v", syms)
	}
	if syms[0].Version != "LINUX_2.6" {
		t.Errorf("version = %q, want LINUX_2.6", syms[0].Version)
	}
	// The Go runtime's constant for LINUX_2.6.
	if h := elfHash("LINUX_2.6"); h != 0x3ae75f6 {
		t.Errorf("elfHash(LINUX_2.6) = %#x", h)
	}
}
