package hvt_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
)

// TestReadOnlyMemory: a store to a read-only slot exits as MMIO and leaves
// the host memory as it was. hvt maps the image copy that instances share
// this way. The guest is four bytes of real-mode code.
func TestReadOnlyMemory(t *testing.T) {
	needKVM(t)
	sys, err := kvm.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if n, _ := sys.Check(kvm.CapReadOnlyMem); n == 0 {
		t.Skip("*** SKIPPED: this host's KVM has no read-only memory slots (hvt then maps the copy read-only on the host only) ***")
	}
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	mmap := func(prot int) []byte {
		b, err := unix.Mmap(-1, 0, 4096, prot|unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(b) })
		return b
	}
	code := mmap(unix.PROT_WRITE)
	copy(code, []byte{0xa2, 0x00, 0x10, 0xf4}) // mov %al, 0x1000; hlt
	ro := mmap(unix.PROT_WRITE)
	ro[0] = 0x5a
	if err := unix.Mprotect(ro, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetMemory(0, 0, code); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetReadOnlyMemory(1, 0x1000, ro); err != nil {
		t.Fatal(err)
	}
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s kvm.Sregs
	if err := c.GetSregs(&s); err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	if err := c.SetSregs(&s); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRegs(&kvm.Regs{RAX: 0xa5, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.RunOnce(); err != nil {
		t.Fatal(err)
	}
	if r := c.Run.ExitReason(); r != kvm.ExitMMIO {
		t.Fatalf("exit %s, want MMIO", kvm.ExitName(r))
	}
	if addr, write := c.Run.MMIO(); addr != 0x1000 || !write {
		t.Fatalf("MMIO at %#x (write %v), want a write at 0x1000", addr, write)
	}
	if ro[0] != 0x5a {
		t.Fatalf("read-only memory changed to %#x", ro[0])
	}
}
