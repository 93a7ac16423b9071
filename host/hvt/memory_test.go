package hvt

import (
	"bytes"
	"errors"
	"testing"
)

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

// TestCorruptPageTable: a page-table entry that points outside RAM (as a
// guest that reached ring 0 could write) makes walks fail, never panic the
// tender. It panicked with an index out of range in translate before.
func TestCorruptPageTable(t *testing.T) {
	m, err := newMemory(64<<20, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	m.areas = append(m.areas, area{0x400000, 0x600000, protRead | protWrite, areaAnon})
	const va = 0x400000
	var b [8]byte
	if err := m.copyOut(va, b[:]); err != nil {
		t.Fatal(err)
	}
	pml4e := m.pte(m.pml4, 0)
	*pml4e = 1<<45 | *pml4e&0xfff // the PDPT, moved far past RAM
	if _, _, ok := m.translate(va); ok {
		t.Error("translate through a table outside RAM succeeded")
	}
	if err := m.copyIn(va, b[:]); err == nil {
		t.Error("copyIn through a table outside RAM succeeded")
	}
	if n := m.unbound(va); n != pageSize {
		t.Errorf("unbound = %#x, want a page", n)
	}
	m.discard(0, 1<<32)
	if _, err := m.entry(va, 1, true); err == nil {
		t.Error("entry through a table outside RAM succeeded")
	}
}

// TestChargedAgainstLimit: pages the tender binds eagerly (.bss, shim,
// vDSO) and page tables count against -m, as faulted pages do. The .bss
// was bound from a reserve beyond -m before.
func TestChargedAgainstLimit(t *testing.T) {
	m, err := newMemory(16<<20, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	if err := m.populate(0x400000, 0x400000+12<<20, protRead|protWrite, nil, 0); err != nil {
		t.Fatal(err)
	}
	if m.bound < 12<<20 {
		t.Errorf("12 MiB populated: %d bytes counted", m.bound)
	}
	err = m.populate(0x2000000, 0x2000000+8<<20, protRead|protWrite, nil, 0)
	var oom *oomError
	if !errors.As(err, &oom) {
		t.Fatalf("20 MiB populated under a 16 MiB limit: %v", err)
	}
	m.areas = append(m.areas, area{0x8000000, 0x9000000, protRead | protWrite, areaAnon})
	if _, err := m.fault(0x8000000, true); err != nil {
		t.Errorf("a 2 MiB fault with 4 MiB left, less the tables: %v", err)
	}
	if _, err := m.fault(0x8200000, true); !errors.As(err, &oom) {
		t.Errorf("a 2 MiB fault with 2 MiB left, less the tables: %v", err)
	}
}

// TestHostSlices: the host's views of a guest range cover it exactly,
// neighbours in guest-physical memory merged into one view.
func TestHostSlices(t *testing.T) {
	m, err := newMemory(64<<20, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	m.areas = append(m.areas, area{0x400000, 0x800000, protRead | protWrite, areaAnon})
	want := make([]byte, 3*pageSize+100)
	for i := range want {
		want[i] = byte(i * 7)
	}
	const va = 0x400000 + 50
	if err := m.copyOut(va, want); err != nil {
		t.Fatal(err)
	}
	views, err := m.hostSlices(va, len(want), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, v := range views {
		got = append(got, v...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("views hold %d bytes, not the %d written", len(got), len(want))
	}
	if len(views) != 1 { // a 2 MiB page: one slot, contiguous
		t.Errorf("%d views of one contiguous range", len(views))
	}
	if _, err := m.hostSlices(1<<47-8, 16, false); err == nil {
		t.Error("a range past user space: no error")
	}
}
