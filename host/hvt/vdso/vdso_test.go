package vdso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
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
	names := []string{"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time"}
	if len(syms) != len(names) || syms[0].Value != ClockGettimeOffset {
		t.Fatalf("dynamic symbols = %+v", syms)
	}
	for i, s := range syms {
		if s.Name != names[i] || s.Version != "LINUX_2.6" || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			t.Errorf("symbol %d: %+v, want %s, a function of version LINUX_2.6", i, s, names[i])
		}
	}
	// Found through DT_HASH, as a dynamic loader (and Go's runtime, when
	// there is no DT_GNU_HASH) looks a name up.
	img := Image()
	le := binary.LittleEndian
	h := img[offHash:]
	nbucket := le.Uint32(h[0:])
	for _, name := range names {
		i := le.Uint32(h[8+4*(elfHash(name)%nbucket):])
		for ; i != 0; i = le.Uint32(h[8+4*nbucket+4*i:]) {
			if i >= uint32(len(syms)+1) {
				t.Fatalf("%s: the hash chain reaches symbol %d", name, i)
			}
			if syms[i-1].Name == name {
				break
			}
		}
		if i == 0 {
			t.Errorf("%s is not in the hash table", name)
		}
	}
	// The Go runtime's constant for LINUX_2.6.
	if h := elfHash("LINUX_2.6"); h != 0x3ae75f6 {
		t.Errorf("elfHash(LINUX_2.6) = %#x", h)
	}
}
