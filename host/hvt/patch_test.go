package hvt

import (
	"encoding/binary"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/moteos/mote/host/hvt/shim"
	"github.com/moteos/mote/host/image"
)

// TestSyscallPatches rewrites a real guest's runtime: the generic
// Syscall6 and the runtime's own wrappers call the shim, each at the entry
// for the call number the site loaded; a dying thread's exit and
// rt_sigreturn keep their SYSCALL.
func TestSyscallPatches(t *testing.T) {
	img := helloImage(t)
	m := &machine{img: img}

	names := append([]string{shim.Syscall6, "runtime.exitThread"}, shim.Functions...)
	funcs := img.Funcs(names...)
	in := map[string]int{}
	for _, p := range m.syscallPatches() {
		if p.code[0] != 0xe8 {
			t.Fatalf("patch at %#x is not a call: % x", p.va, p.code)
		}
		target := uint64(int64(p.va+5) + int64(int32(binary.LittleEndian.Uint32(p.code[1:]))))
		orig, _ := img.Text(p.va, uint64(len(p.code)))
		var want uint64
		switch {
		case len(p.code) == 5:
			want = shimBase + shim.Syscall6Entry
		case orig[0] == 0xb8: // mov $nr, %eax
			off, _ := shim.Entry(uint64(binary.LittleEndian.Uint32(orig[1:])))
			want = shimBase + off
		default: // mov $nr, %rax
			off, _ := shim.Entry(uint64(binary.LittleEndian.Uint32(orig[3:])))
			want = shimBase + off
		}
		if target != want {
			t.Errorf("call at %#x goes to %#x, want %#x (original % x)", p.va, target, want, orig)
		}
		for n, r := range funcs {
			if p.va >= r[0] && p.va < r[1] {
				in[n]++
				checkSite(t, img, n, r, p)
			}
		}
	}
	for _, n := range []string{shim.Syscall6, "runtime.futex", "runtime.sysMmap", "runtime.write1", "runtime.clone", "runtime.usleep", "runtime.sigreturn__sigaction"} {
		if in[n] == 0 {
			t.Errorf("no site rewritten in %s (rewritten: %v)", n, in)
		}
	}
	if in[shim.Syscall6] != 1 {
		t.Errorf("%d sites rewritten in %s, want 1", in[shim.Syscall6], shim.Syscall6)
	}
	if _, ok := funcs["runtime.exitThread"]; !ok {
		t.Error("runtime.exitThread not found in the guest")
	}
	if in["runtime.exitThread"] != 0 {
		t.Error("runtime.exitThread was rewritten: a dying thread's stack is not its own")
	}
}

// checkSite decodes the function holding patch p: the bytes it replaces
// must be whole instructions, ending in the SYSCALL, and no jump in the
// function may land inside them.
func checkSite(t *testing.T, img *image.Image, name string, r [2]uint64, p textPatch) {
	t.Helper()
	code, ok := img.Text(r[0], r[1]-r[0])
	if !ok {
		t.Fatalf("%s: no text", name)
	}
	starts := map[uint64]x86asm.Inst{}
	var targets []uint64
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil || inst.Len == 0 {
			off++ // padding after the function's end
			continue
		}
		pc := r[0] + uint64(off)
		starts[pc] = inst
		for _, a := range inst.Args {
			if rel, ok := a.(x86asm.Rel); ok {
				targets = append(targets, pc+uint64(inst.Len)+uint64(int64(rel)))
			}
		}
		off += inst.Len
	}
	end := p.va + uint64(len(p.code))
	var last x86asm.Inst
	for pc := p.va; pc < end; {
		inst, ok := starts[pc]
		if !ok {
			t.Errorf("%s: the patch at %#x does not cover whole instructions (%#x)", name, p.va, pc)
			return
		}
		last = inst
		pc += uint64(inst.Len)
	}
	if last.Op != x86asm.SYSCALL {
		t.Errorf("%s: the patch at %#x ends in %v, not SYSCALL", name, p.va, last)
	}
	for _, tg := range targets {
		if tg > p.va && tg < end {
			t.Errorf("%s: a jump lands at %#x, inside the patch at %#x", name, tg, p.va)
		}
	}
}
