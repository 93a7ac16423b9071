package hvt

import (
	"fmt"

	"github.com/moteos/mote/host/hvt/shim"
	"github.com/moteos/mote/host/hvt/vdso"
	"github.com/moteos/mote/host/image"
)

// reserved are the guest-virtual ranges the tender keeps for itself. An
// image segment there would replace the tender's own mappings: over the
// IDT and the exception stubs it would give the image's code ring 0 (a
// gate of its own choosing), and through ring 0 the shared read-only
// image copy and the page tables the tender walks.
var reserved = []struct {
	start, end uint64
	what       string
}{
	{shimBase, shimBase + shim.Size, "the system-call shim"},
	{kickPage, ringBase + 64*hugeSize, "the NICs' rings and doorbells"},
	{kernBase, kernEnd, "the tender's ring-0 pages (IDT, exception stubs, SYSCALL entry, doorbell, per-vCPU pages)"},
	{vdsoBase, vdsoBase + vdso.Size, "the vDSO"},
	{stackTop - stackSize, userTop, "the main thread's stack"},
}

// CheckImage opens the image at path and checks that the tender can load
// it, as Run does first, without KVM: a bad image is reported the same on a
// host that has none. Run needs no CheckImage before it.
func CheckImage(path string) error {
	img, err := image.Open(path)
	if err != nil {
		return err
	}
	defer img.Close()
	return checkLayout(img)
}

// checkLayout refuses an image any of whose segments meets a range the
// tender keeps, before any VM exists.
func checkLayout(img *image.Image) error {
	for _, s := range img.Segments {
		end := s.Vaddr + alignUp(s.Memsz, pageSize)
		for _, r := range reserved {
			if s.Vaddr < r.end && end > r.start {
				return fmt.Errorf("hvt: image %s: its segment [%#x, %#x) meets %s at [%#x, %#x): not a program the tender can load",
					img.Path, s.Vaddr, end, r.what, r.start, r.end)
			}
		}
	}
	return nil
}

// checkFits refuses an image whose own memory does not fit in the guest's
// (-m): its writable segments (.data, .bss), which the guest may dirty
// all of, count against -m like any page it touches.
func checkFits(img *image.Image, limit uint64) error {
	var need uint64
	for _, s := range img.Segments {
		if s.Write {
			need += alignUp(s.Vaddr+s.Memsz, pageSize) - s.Vaddr&^(pageSize-1)
		} else if s.Memsz > uint64(len(s.Data)) {
			need += alignUp(s.Memsz-uint64(len(s.Data)), pageSize) // a read-only .bss
		}
	}
	if need > limit {
		return fmt.Errorf("hvt: image %s: its writable segments (.data and .bss) take %d MiB, more than the guest's memory (-m %d MiB)",
			img.Path, need>>20, limit>>20)
	}
	return nil
}
