package hvt

import (
	"strings"
	"testing"

	"github.com/moteos/mote/host/image"
)

// An image segment that meets any range the tender keeps is refused before
// a VM exists; a review's crafted image placed one over the IDT and ran its
// own code in ring 0. TestBadImagesRefusedBeforeBoot boots nothing either;
// this needs no KVM.
func TestLayoutRefusesTenderRanges(t *testing.T) {
	ok := image.Segment{Vaddr: 0x400000, Memsz: 0x100000}
	for _, c := range []struct {
		seg  image.Segment
		want string // "" for accepted
	}{
		{ok, ""},
		{image.Segment{Vaddr: kernIDT, Memsz: 0x1000}, "ring-0 pages"},
		{image.Segment{Vaddr: kernStubs + 0x800, Memsz: 8}, "ring-0 pages"},
		{image.Segment{Vaddr: kernBase - 0x1000, Memsz: 0x1001}, "ring-0 pages"},
		{image.Segment{Vaddr: kernCPU + 5*cpuStride, Memsz: 0x1000}, "ring-0 pages"},
		{image.Segment{Vaddr: shimBase - 0x1000, Memsz: 0x2000}, "shim"},
		{image.Segment{Vaddr: ringBase + hugeSize, Memsz: 0x1000}, "rings"},
		{image.Segment{Vaddr: vdsoBase, Memsz: 0x1000}, "vDSO"},
		{image.Segment{Vaddr: stackTop - 0x2000, Memsz: 0x1000}, "stack"},
		{image.Segment{Vaddr: kernEnd, Memsz: 0x1000}, ""},
	} {
		img := &image.Image{Path: "crafted", Segments: []image.Segment{c.seg}}
		err := checkLayout(img)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("segment at %#x: refused: %v", c.seg.Vaddr, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("segment at %#x: %v, want a refusal naming %q", c.seg.Vaddr, err, c.want)
		}
	}
	// A real Go program loads.
	img := helloImage(t)
	if err := checkLayout(img); err != nil {
		t.Fatal(err)
	}
}

// An image whose writable segments exceed -m is refused before boot: a
// review's program dirtied 1.9 GB of .bss under -m 16M.
func TestImageMustFitMemory(t *testing.T) {
	img := &image.Image{Path: "big", Segments: []image.Segment{
		{Vaddr: 0x400000, Memsz: 8 << 20, Data: make([]byte, 8<<20), Read: true, Exec: true}, // text: the file's pages
		{Vaddr: 0xc00000, Memsz: 40 << 20, Data: make([]byte, 1<<20), Read: true, Write: true},
	}}
	if err := checkFits(img, 64<<20); err != nil {
		t.Errorf("40 MiB of .data and .bss under 64 MiB: %v", err)
	}
	err := checkFits(img, 32<<20)
	if err == nil || !strings.Contains(err.Error(), "take 40 MiB, more than the guest's memory (-m 32 MiB)") {
		t.Errorf("40 MiB of .data and .bss under 32 MiB: %v", err)
	}
}
