package vdso

import (
	"debug/elf"
	"encoding/binary"
)

// Size is the guest memory the vDSO occupies: the image page, then the
// data page.
const Size = 2 * PageSize

// PageSize is the guest page size.
const PageSize = 4096

// Offsets in the data page (the second page).
const (
	DataSeq      = 0  // uint32, odd while the tender updates the page
	DataTSCBase  = 8  // TSC value at which the bases were taken
	DataMult     = 16 // nanoseconds per TSC tick, as a 32.32 fixed-point number
	DataMonoBase = 24 // CLOCK_MONOTONIC at DataTSCBase, in nanoseconds
	DataRealBase = 32 // CLOCK_REALTIME at DataTSCBase, in nanoseconds
)

// The layout of the image page.
const (
	offPhdr    = 64
	offDynsym  = 0x100 // 4 symbols of 24 bytes
	offDynstr  = 0x160
	offHash    = 0x1b0
	offVersym  = 0x1d0
	offVerdef  = 0x1e0
	offDynamic = 0x220
	offCode    = 0x300
	offShstr   = 0x900
	offShdr    = 0xa00
)

const (
	strClock  = 1 // "__vdso_clock_gettime"
	strGtod   = strClock + len("__vdso_clock_gettime") + 1
	strTime   = strGtod + len("__vdso_gettimeofday") + 1
	strSoname = strTime + len("__vdso_time") + 1
	strVer    = strSoname + len("linux-vdso.so.1") + 1
)

// ClockGettimeOffset is the offset of __vdso_clock_gettime in the image.
const ClockGettimeOffset = offCode

// Image returns the vDSO's image page. It is position independent: the
// tender may place it at any page-aligned address followed by the data page.
func Image() []byte {
	b := make([]byte, PageSize)
	le := binary.LittleEndian

	// ELF header.
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_DYN))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[24:], offCode) // e_entry
	le.PutUint64(b[32:], offPhdr) // e_phoff
	le.PutUint16(b[52:], 64)      // e_ehsize
	le.PutUint16(b[54:], 56)      // e_phentsize
	le.PutUint16(b[56:], 2)       // e_phnum
	le.PutUint64(b[40:], offShdr) // e_shoff
	le.PutUint16(b[58:], 64)      // e_shentsize

	// PT_LOAD covering the image page, PT_DYNAMIC.
	ph := b[offPhdr:]
	le.PutUint32(ph[0:], uint32(elf.PT_LOAD))
	le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_X))
	le.PutUint64(ph[32:], PageSize) // p_filesz
	le.PutUint64(ph[40:], PageSize) // p_memsz
	le.PutUint64(ph[48:], PageSize) // p_align
	ph = b[offPhdr+56:]
	le.PutUint32(ph[0:], uint32(elf.PT_DYNAMIC))
	le.PutUint32(ph[4:], uint32(elf.PF_R))
	le.PutUint64(ph[8:], offDynamic)
	le.PutUint64(ph[16:], offDynamic)
	le.PutUint64(ph[24:], offDynamic)
	le.PutUint64(ph[32:], 9*16)
	le.PutUint64(ph[40:], 9*16)
	le.PutUint64(ph[48:], 8)

	// Symbols 1–3, global functions, all of version LINUX_2.6 (index 2).
	for i, s := range []struct{ name, off, size int }{
		{strClock, 0, gettimeofdayCode},
		{strGtod, gettimeofdayCode, timeCode - gettimeofdayCode},
		{strTime, timeCode, len(clockCode) - timeCode},
	} {
		sym := b[offDynsym+24*(i+1):]
		le.PutUint32(sym[0:], uint32(s.name))
		sym[4] = byte(elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC))
		le.PutUint16(sym[6:], 7) // .text (see sections)
		le.PutUint64(sym[8:], uint64(offCode+s.off))
		le.PutUint64(sym[16:], uint64(s.size))
		le.PutUint16(b[offVersym+2*(i+1):], 2)
	}

	strs := "\x00__vdso_clock_gettime\x00__vdso_gettimeofday\x00__vdso_time\x00linux-vdso.so.1\x00LINUX_2.6\x00"
	copy(b[offDynstr:], strs)

	// DT_HASH: one bucket, the chain 1 → 2 → 3.
	h := b[offHash:]
	for i, v := range []uint32{1, 4, 1, 0, 2, 3, 0} { // nbucket, nchain, bucket[0], chain[0..3]
		le.PutUint32(h[4*i:], v)
	}

	// Version definitions: the base (the soname), then LINUX_2.6.
	verdef := func(off int, flags, ndx uint16, hash uint32, name int, last bool) {
		v := b[off:]
		le.PutUint16(v[0:], 1) // vd_version
		le.PutUint16(v[2:], flags)
		le.PutUint16(v[4:], ndx)
		le.PutUint16(v[6:], 1)    // vd_cnt
		le.PutUint32(v[8:], hash) // vd_hash
		le.PutUint32(v[12:], 20)  // vd_aux
		if !last {
			le.PutUint32(v[16:], 28) // vd_next
		}
		le.PutUint32(v[20:], uint32(name)) // vda_name
	}
	verdef(offVerdef, 1 /* VER_FLG_BASE */, 1, elfHash("linux-vdso.so.1"), strSoname, false)
	verdef(offVerdef+28, 0, 2, elfHash("LINUX_2.6"), strVer, true)

	dyn := b[offDynamic:]
	for i, d := range [][2]uint64{
		{uint64(elf.DT_HASH), offHash},
		{uint64(elf.DT_STRTAB), offDynstr},
		{uint64(elf.DT_SYMTAB), offDynsym},
		{uint64(elf.DT_STRSZ), uint64(len(strs))},
		{uint64(elf.DT_SYMENT), 24},
		{uint64(elf.DT_VERSYM), offVersym},
		{uint64(elf.DT_VERDEF), offVerdef},
		{uint64(elf.DT_VERDEFNUM), 2},
		{uint64(elf.DT_NULL), 0},
	} {
		le.PutUint64(dyn[16*i:], d[0])
		le.PutUint64(dyn[16*i+8:], d[1])
	}

	sections(b, len(strs))

	code := b[offCode:]
	copy(code, clockCode)
	// lea disp32(%rip), %r8: the displacement is from the end of the
	// 7-byte instruction to the data page.
	le.PutUint32(code[3:], uint32(PageSize-(offCode+7)))
	return b
}

// elfHash is the System V ABI symbol hash.
func elfHash(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h = h<<4 + uint32(s[i])
		g := h & 0xf0000000
		if g != 0 {
			h ^= g >> 24
		}
		h &^= g
	}
	return h
}

// sections writes section headers, which the runtime does not need but
// debuggers and binutils do to make sense of the image.
func sections(b []byte, strsz int) {
	le := binary.LittleEndian
	type sec struct {
		name           string
		typ            elf.SectionType
		flags          elf.SectionFlag
		off, size      uint64
		link, info     uint32
		align, entsize uint64
	}
	secs := []sec{
		{},
		{".hash", elf.SHT_HASH, elf.SHF_ALLOC, offHash, 28, 2, 0, 4, 4},
		{".dynsym", elf.SHT_DYNSYM, elf.SHF_ALLOC, offDynsym, 96, 3, 1, 8, 24},
		{".dynstr", elf.SHT_STRTAB, elf.SHF_ALLOC, offDynstr, uint64(strsz), 0, 0, 1, 0},
		{".gnu.version", elf.SHT_GNU_VERSYM, elf.SHF_ALLOC, offVersym, 8, 2, 0, 2, 2},
		{".gnu.version_d", elf.SHT_GNU_VERDEF, elf.SHF_ALLOC, offVerdef, 56, 3, 2, 4, 0},
		{".dynamic", elf.SHT_DYNAMIC, elf.SHF_ALLOC | elf.SHF_WRITE, offDynamic, 9 * 16, 3, 0, 8, 16},
		{".text", elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_EXECINSTR, offCode, uint64(len(clockCode)), 0, 0, 16, 0},
		{".shstrtab", elf.SHT_STRTAB, 0, offShstr, 0, 0, 0, 1, 0},
	}
	names := []byte{0}
	for i := range secs[1:] {
		s := &secs[i+1]
		sh := b[offShdr+64*(i+1):]
		le.PutUint32(sh[0:], uint32(len(names)))
		names = append(append(names, s.name...), 0)
		le.PutUint32(sh[4:], uint32(s.typ))
		le.PutUint64(sh[8:], uint64(s.flags))
		if s.flags&elf.SHF_ALLOC != 0 {
			le.PutUint64(sh[16:], s.off) // sh_addr
		}
		le.PutUint64(sh[24:], s.off)
		le.PutUint64(sh[32:], s.size)
		le.PutUint32(sh[40:], s.link)
		le.PutUint32(sh[44:], s.info)
		le.PutUint64(sh[48:], s.align)
		le.PutUint64(sh[56:], s.entsize)
	}
	copy(b[offShstr:], names)
	le.PutUint64(b[offShdr+64*8+32:], uint64(len(names)))
	le.PutUint16(b[60:], uint16(len(secs))) // e_shnum
	le.PutUint16(b[62:], 8)                 // e_shstrndx
}
