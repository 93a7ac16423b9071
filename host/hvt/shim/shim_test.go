package shim

import "testing"

// Every entry point lies inside the code, and the code fits its page.
func TestLayout(t *testing.T) {
	if len(Code) > ProcOffset {
		t.Fatalf("code is %d bytes, more than its page", len(Code))
	}
	for _, nr := range []uint64{13, 14, 15, 35, 39, 131, 186, 204, 0, 1, 3, 9, 11, 24, 27, 28, 56, 202, 231, 234, 257} {
		off, ok := Entry(nr)
		if !ok || off >= uint64(len(Code)) {
			t.Errorf("entry for %d: %#x, %v", nr, off, ok)
		}
	}
	for _, off := range []uint64{SigenterXSAVE, SigenterFXSAVE} {
		if off < SignalStart || off >= SignalEnd || SignalEnd > uint64(len(Code)) {
			t.Errorf("signal entry %#x outside [%#x, %#x)", off, SignalStart, SignalEnd)
		}
	}
	if e, _ := Entry(15); e < SignalStart || e >= SignalEnd {
		t.Errorf("rt_sigreturn's entry %#x is outside the signal stubs", e)
	}
	if _, ok := Entry(60); ok {
		t.Error("exit(2) has no shim entry: a dying thread's stack is not its own")
	}
}
