package hvt

import "testing"

// TestUnbound: over address space the page tables do not map, discard
// steps by what the missing entry would have covered (512 GiB, 1 GiB,
// 2 MiB or a page), not page by page: munmap of the whole user range
// took minutes of the tender's time under its memory lock before.
func TestUnbound(t *testing.T) {
	m, err := newMemory(64<<20, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	const gib, tib512 = 1 << 30, 1 << 39
	va := uint64(5*tib512 + 3*gib + 7<<21 + 5<<12)
	if got, want := m.unbound(va), uint64(tib512-(3*gib+7<<21+5<<12)); got != want {
		t.Errorf("empty tables: %#x, want %#x", got, want)
	}
	pa, err := m.allocPage()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.mapPage(va, pa, protFlags(protRead)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ va, want uint64 }{
		{va + 1<<12, 1 << 12},                           // the next page of the same table
		{va + 1<<21, 1<<21 - 5<<12},                     // the next 2 MiB: no page table
		{va + 1<<30, 1<<30 - (7<<21 + 5<<12)},           // the next GiB: no directory
		{va + tib512, tib512 - (3*gib + 7<<21 + 5<<12)}, // the next 512 GiB
	} {
		if got := m.unbound(c.va); got != c.want {
			t.Errorf("unbound(%#x) = %#x, want %#x", c.va, got, c.want)
		}
	}
	m.discard(1<<32, kernBase) // returns at once
}
