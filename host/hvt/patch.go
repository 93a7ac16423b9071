package hvt

import (
	"bytes"
	"encoding/binary"

	"github.com/moteos/mote/host/hvt/shim"
)

// textPatch is code to write over the program's text at va.
type textPatch struct {
	va   uint64
	code []byte
}

// syscallPatches finds the system-call sites of the Go runtime functions
// the shim serves and their rewrites: `mov $nr, %eax; syscall` (7 bytes)
// or `mov $nr, %rax; syscall` (9 bytes) becomes `call shim+entry` and a
// nop, and the generic Syscall6's `mov %rbx, %rdi; syscall` (5 bytes) a
// call. Only exact matches inside the named functions are rewritten, and
// only for call numbers the shim knows; everything else keeps its SYSCALL.
func (m *machine) syscallPatches() []textPatch {
	var ps []textPatch
	for name, r := range m.img.Funcs(append([]string{shim.Syscall6}, shim.Functions...)...) {
		entry := r[0]
		code, ok := m.funcText(r)
		if !ok {
			continue
		}
		if name == shim.Syscall6 {
			// Exactly one site, or the function is not the one we know.
			if bytes.Count(code, shim.Syscall6Site) == 1 {
				site := entry + uint64(bytes.Index(code, shim.Syscall6Site))
				if p, ok := callShim(site, shim.Syscall6Entry, len(shim.Syscall6Site)); ok {
					ps = append(ps, p)
				}
			}
			continue
		}
		for i := 0; i+7 <= len(code); i++ {
			var nr uint64
			var size int
			switch {
			case code[i] == 0xb8 && code[i+5] == 0x0f && code[i+6] == 0x05:
				nr, size = uint64(binary.LittleEndian.Uint32(code[i+1:])), 7
			case i+9 <= len(code) && code[i] == 0x48 && code[i+1] == 0xc7 && code[i+2] == 0xc0 &&
				code[i+7] == 0x0f && code[i+8] == 0x05:
				nr, size = uint64(binary.LittleEndian.Uint32(code[i+3:])), 9
			default:
				continue
			}
			off, ok := shim.Entry(nr)
			if !ok {
				continue
			}
			if p, ok := callShim(entry+uint64(i), off, size); ok {
				ps = append(ps, p)
				i += size - 1
			}
		}
	}
	return ps
}

// funcText is the code of the function at [r[0], r[1]), if it is a small
// one inside the image's text.
func (m *machine) funcText(r [2]uint64) ([]byte, bool) {
	if r[1] <= r[0] || r[1]-r[0] > 4096 {
		return nil, false
	}
	return m.img.Text(r[0], r[1]-r[0])
}

// callShim is the rewrite of the size bytes at site into `call shim+off`
// (5 bytes) and a nop filling the rest; false if the shim is out of a
// rel32's reach.
func callShim(site, off uint64, size int) (textPatch, bool) {
	rel := int64(shimBase+off) - int64(site+5)
	if rel != int64(int32(rel)) {
		return textPatch{}, false
	}
	p := make([]byte, size)
	p[0] = 0xe8 // call rel32
	binary.LittleEndian.PutUint32(p[1:], uint32(int32(rel)))
	switch size {
	case 7:
		copy(p[5:], []byte{0x66, 0x90}) // 2-byte nop
	case 9:
		copy(p[5:], []byte{0x0f, 0x1f, 0x40, 0x00}) // 4-byte nop
	}
	return textPatch{site, p}, true
}

// applyPatches writes the patches into the guest's (read-only) program
// text, whose pages under them load mapped privately, and returns how many
// it wrote.
func (m *machine) applyPatches(ps []textPatch) int {
	n := 0
next:
	for _, p := range ps {
		pas := make([]uint64, len(p.code))
		for i := range p.code {
			pa, _, ok := m.mem.translate(p.va + uint64(i))
			if !ok {
				continue next
			}
			pas[i] = pa
		}
		for i, pa := range pas {
			m.mem.phys(pa)[0] = p.code[i]
		}
		n++
	}
	return n
}
