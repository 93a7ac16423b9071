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
