package hvt

import (
	"encoding/binary"
	"fmt"

	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/shim"
)

// The guest's x86-64 machine state.
//
// The program runs at CPL3 with the tender's page tables. Ring 0 holds no
// kernel: only one-instruction stubs that exit to the tender. Each
// exception vector has its own stub and port (`out`, which only ring 0 may
// execute: IOPL is 0); the SYSCALL entry (LSTAR) stores to the doorbell
// page. The tender then reads the state it needs (the syscall registers,
// or the exception frame the CPU pushed on the per-vCPU ring-0 stack),
// does the work, and puts the vCPU back at CPL3 itself by setting
// RIP, RSP, RFLAGS, CS and SS through the synchronized registers. No guest
// instruction ever returns from ring 0, which matters on kvm-pvm, where
// ring-0 code is emulated instruction by instruction and SYSRET faults.

var le = binary.LittleEndian

// Segment selectors, as Linux numbers them.
const (
	selKernelCS = 0x10
	selKernelDS = 0x18
	selUserDS   = 0x2b
	selUserCS   = 0x33
	selTSS      = 0x40
)

// portOther is the stub port of vectors 32-255, which nothing should
// raise; vectors 0-31 exit through the port of their own number.
const portOther = 0xff

// Kernel virtual layout (supervisor-only pages in the upper half).
const (
	kernIDT      = kernBase
	kernStubs    = kernBase + 0x1000
	kernEntry    = kernBase + 0x2000  // the SYSCALL entry page, user-executable
	kernDoorbell = shim.Doorbell      // maps the doorbell: MMIO, not memory
	kernCPU      = kernBase + 0x10000 // per-vCPU: GDT+TSS page, then ring-0 stack page
	cpuStride    = 0x2000
	maxVCPUs     = 4096                         // KVM's own limit is lower
	kernEnd      = kernCPU + maxVCPUs*cpuStride // the guest may map nothing below this from kernBase
)

const (
	stubSize  = 16
	stubOther = 32 * stubSize
	tssOffset = 0x100 // in the per-vCPU page, after the GDT
	// rflagsDefault is IF and the reserved bit. IOPL is 0, so that only
	// the ring-0 stubs can exit through a port: with IOPL 3 the program
	// could fake an exception's exit with `out`.
	rflagsDefault = 0x202
)

// Control register and EFER bits.
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0ET = 1 << 4
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0AM = 1 << 18
	cr0PG = 1 << 31

	cr4PAE        = 1 << 5
	cr4OSFXSR     = 1 << 9
	cr4OSXMMEXCPT = 1 << 10
	cr4OSXSAVE    = 1 << 18

	eferSCE = 1 << 0
	eferLME = 1 << 8
	eferLMA = 1 << 10
	eferNXE = 1 << 11
)

// MSRs.
const (
	msrSTAR   = 0xc0000081
	msrLSTAR  = 0xc0000082
	msrCSTAR  = 0xc0000083
	msrSFMASK = 0xc0000084
)

// Exception vectors with an error code pushed by the CPU.
func hasErrorCode(vector int) bool {
	switch vector {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

var vectorNames = [32]string{
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 floating point", "alignment check",
	"machine check", "SIMD floating point", "virtualization", "control protection",
}

func vectorName(v int) string {
	if v >= 0 && v < len(vectorNames) && vectorNames[v] != "" {
		return vectorNames[v]
	}
	return fmt.Sprintf("vector %d", v)
}

// buildStubs fills the stub page: per vector `out %al, $v; hlt`.
func buildStubs(page []byte) {
	stub := func(off int, port byte) {
		page[off] = 0xe6 // out %al, $imm8
		page[off+1] = port
		page[off+2] = 0xf4 // hlt: never reached, the tender never resumes a stub
	}
	for v := 0; v < 32; v++ {
		stub(v*stubSize, byte(v))
	}
	stub(stubOther, portOther)
}

// buildEntry fills the SYSCALL entry page: a one-byte store to the
// doorbell page (guest-physical memory no slot backs, so the store exits to
// the tender as MMIO from whatever privilege the entry runs at), then hlt.
func buildEntry(page []byte) {
	page[0] = 0xa2 // movabs %al, moffs64
	le.PutUint64(page[1:], kernDoorbell)
	page[9] = 0xf4
}

// buildIDT fills the IDT: 64-bit interrupt gates to the stubs, DPL 0, so
// user code cannot raise them with `int`.
func buildIDT(page []byte) {
	for v := 0; v < 256; v++ {
		target := uint64(kernStubs + stubOther)
		if v < 32 {
			target = kernStubs + uint64(v*stubSize)
		}
		e := page[v*16:]
		le.PutUint16(e[0:], uint16(target))
		le.PutUint16(e[2:], selKernelCS)
		e[4] = 0    // IST
		e[5] = 0x8e // present, DPL 0, 64-bit interrupt gate
		le.PutUint16(e[6:], uint16(target>>16))
		le.PutUint32(e[8:], uint32(target>>32))
	}
}

// buildCPUPage fills a vCPU's GDT and TSS. rsp0 is the top of its ring-0
// stack, where the CPU pushes exception frames.
func buildCPUPage(page []byte, tssVA, rsp0 uint64) {
	gdt := []uint64{
		0,
		0,
		0x00af9b000000ffff, // 0x10 kernel code, 64-bit
		0x00cf93000000ffff, // 0x18 kernel data
		0x00cffb000000ffff, // 0x20 user code, 32-bit (unused; keeps Linux numbering)
		0x00cff3000000ffff, // 0x28 user data
		0x00affb000000ffff, // 0x30 user code, 64-bit
		0,
	}
	for i, d := range gdt {
		le.PutUint64(page[i*8:], d)
	}
	// 0x40: the 16-byte TSS descriptor.
	lim := uint64(103)
	lo := lim&0xffff | (tssVA&0xffffff)<<16 | uint64(0x89)<<40 | (tssVA>>24&0xff)<<56
	le.PutUint64(page[0x40:], lo)
	le.PutUint64(page[0x48:], tssVA>>32)
	tss := page[tssOffset:]
	le.PutUint64(tss[4:], rsp0)
	le.PutUint16(tss[102:], 104) // no I/O permission bitmap
}

// userSegments sets CS and SS for CPL3.
func userSegments(s *kvm.Sregs) {
	s.CS = kvm.Segment{Selector: selUserCS, Limit: 0xffffffff, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	s.SS = kvm.Segment{Selector: selUserDS, Limit: 0xffffffff, Type: 3, Present: 1, DPL: 3, DB: 1, S: 1, G: 1}
}

// initialSregs is a vCPU's special-register state on entry to the program.
func initialSregs(cpuVA uint64) kvm.Sregs {
	var s kvm.Sregs
	userSegments(&s)
	data := kvm.Segment{Selector: 0, Unusable: 1}
	s.DS, s.ES, s.FS, s.GS = data, data, data, data
	s.FS.Unusable, s.GS.Unusable = 0, 0
	s.FS = kvm.Segment{Limit: 0xffffffff, Type: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	s.GS = s.FS
	s.TR = kvm.Segment{Base: cpuVA + tssOffset, Limit: 103, Selector: selTSS, Type: 11, Present: 1}
	s.LDT = kvm.Segment{Unusable: 1, Type: 2, Present: 1}
	s.GDT = kvm.DTable{Base: cpuVA, Limit: 0x4f}
	s.IDT = kvm.DTable{Base: kernIDT, Limit: 256*16 - 1}
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0AM | cr0PG
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4OSXSAVE
	s.EFER = eferSCE | eferLME | eferLMA | eferNXE
	return s
}
