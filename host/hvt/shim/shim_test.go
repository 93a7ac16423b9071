package shim

import "testing"

// Every entry point lies inside the code, and the code fits its page.
func TestLayout(t *testing.T) {
	if len(Code) > ProcOffset {
		t.Fatalf("code is %d bytes, more than its page", len(Code))
	}
	for _, nr := range []uint64{13, 14, 35, 39, 131, 186, 204} {
		off, ok := Entry(nr)
		if !ok || off >= uint64(len(Code)) {
			t.Errorf("entry for %d: %#x, %v", nr, off, ok)
		}
	}
	if _, ok := Entry(0); ok {
		t.Error("read(2) has no shim entry")
	}
}
