package image

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// UserTop is the end of the guest's user address space (47 bits).
const UserTop = 1 << 47

// maxFileSize bounds the images a tender will read (they are read whole).
const maxFileSize = 1 << 30

// Segment is one PT_LOAD segment.
type Segment struct {
	Vaddr  uint64
	Memsz  uint64
	Data   []byte // the file-backed part (len = p_filesz); the rest is zero
	Read   bool
	Write  bool
	Exec   bool
	Offset uint64
}

// Image is a validated unikernel image.
type Image struct {
	Path      string
	Size      int64
	Entry     uint64
	Segments  []Segment
	GoVersion string
	Settings  map[string]string // build settings: GOAMD64, CGO_ENABLED, ...

	data   []byte
	file   *os.File
	mapped bool

	symOnce sync.Once
	table   *gosym.Table
	pcln    []byte
	text    uint64
}

// Error is a refusal of an image, naming the file and the reason.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("image %s: %s", e.Path, e.Reason) }

func refuse(path, format string, args ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// Open reads and validates the image at path.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, refuse(path, "not a regular file")
	}
	if st.Size() > maxFileSize {
		return nil, refuse(path, "%d bytes is larger than the %d-byte limit", st.Size(), maxFileSize)
	}
	if st.Size() == 0 {
		return nil, refuse(path, "empty file")
	}
	// Mapped, not read: a tender maps the program's pages from the file
	// itself, so the host's page cache holds one copy for every instance.
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	img, err := Parse(path, data)
	if err != nil {
		unix.Munmap(data)
		return nil, err
	}
	img.file, img.mapped = f, true
	f = nil // kept open: see File
	return img, nil
}

// File is the open image file; a tender maps the program's pages from it
// (the same file that was validated, whatever happens to the path).
func (img *Image) File() *os.File { return img.file }

// Close releases the file and its mapping.
func (img *Image) Close() error {
	if img.mapped {
		unix.Munmap(img.data)
		img.mapped = false
	}
	if img.file != nil {
		return img.file.Close()
	}
	return nil
}

// Parse validates an image held in memory; path is used in messages.
func Parse(path string, data []byte) (*Image, error) {
	if len(data) < 4 || !bytes.Equal(data[:4], []byte(elf.ELFMAG)) {
		return nil, refuse(path, "not an ELF file")
	}
	if len(data) < 64 {
		return nil, refuse(path, "truncated ELF header (%d bytes)", len(data))
	}
	if elf.Class(data[elf.EI_CLASS]) != elf.ELFCLASS64 {
		return nil, refuse(path, "%v ELF, want a 64-bit linux/amd64 executable", elf.Class(data[elf.EI_CLASS]))
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, refuse(path, "malformed ELF: %v", err)
	}
	if ef.Machine != elf.EM_X86_64 {
		return nil, refuse(path, "built for %v, want x86-64 (GOARCH=amd64)", ef.Machine)
	}
	if ef.ByteOrder.String() != "LittleEndian" {
		return nil, refuse(path, "big-endian ELF")
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, refuse(path, "dynamically linked (has an interpreter): build with CGO_ENABLED=0")
		}
	}
	switch ef.Type {
	case elf.ET_EXEC:
	case elf.ET_DYN:
		return nil, refuse(path, "position-independent or shared object (ELF type %v): build a static executable (CGO_ENABLED=0, no -buildmode=pie)", ef.Type)
	default:
		return nil, refuse(path, "ELF type %v is not an executable", ef.Type)
	}
	img := &Image{Path: path, Size: int64(len(data)), Entry: ef.Entry, data: data}
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_DYNAMIC:
			return nil, refuse(path, "dynamically linked (has a PT_DYNAMIC segment): build with CGO_ENABLED=0")
		case elf.PT_LOAD:
			s, err := segment(path, data, p)
			if err != nil {
				return nil, err
			}
			img.Segments = append(img.Segments, s)
		}
	}
	if len(img.Segments) == 0 {
		return nil, refuse(path, "no loadable segments")
	}
	sort.Slice(img.Segments, func(i, j int) bool { return img.Segments[i].Vaddr < img.Segments[j].Vaddr })
	for i := 1; i < len(img.Segments); i++ {
		a, b := img.Segments[i-1], img.Segments[i]
		if pageUp(a.Vaddr+a.Memsz) > pageDown(b.Vaddr) {
			return nil, refuse(path, "segments at %#x and %#x overlap", a.Vaddr, b.Vaddr)
		}
	}
	if !img.inExec(img.Entry) {
		return nil, refuse(path, "entry point %#x is not in an executable segment", img.Entry)
	}
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, refuse(path, "not a Go program (no Go build information: %v)", err)
	}
	img.GoVersion = bi.GoVersion
	img.Settings = map[string]string{}
	for _, s := range bi.Settings {
		img.Settings[s.Key] = s.Value
	}
	if v := img.Settings["GOOS"]; v != "" && v != "linux" {
		return nil, refuse(path, "built for GOOS=%s, want linux", v)
	}
	if v := img.Settings["CGO_ENABLED"]; v == "1" {
		return nil, refuse(path, "built with cgo: build with CGO_ENABLED=0")
	}
	if err := img.loadSymbols(ef); err != nil {
		return nil, refuse(path, "%v", err)
	}
	return img, nil
}

func segment(path string, data []byte, p *elf.Prog) (Segment, error) {
	if p.Filesz > p.Memsz {
		return Segment{}, refuse(path, "segment at %#x: file size %d exceeds memory size %d", p.Vaddr, p.Filesz, p.Memsz)
	}
	if p.Off > uint64(len(data)) || p.Filesz > uint64(len(data))-p.Off {
		return Segment{}, refuse(path, "truncated: segment at %#x wants file bytes [%#x, %#x) of %d", p.Vaddr, p.Off, p.Off+p.Filesz, len(data))
	}
	end := p.Vaddr + p.Memsz
	if p.Vaddr < 1<<16 || end < p.Vaddr || end > UserTop-(1<<32) {
		return Segment{}, refuse(path, "segment [%#x, %#x) is outside the guest's address space", p.Vaddr, end)
	}
	if p.Vaddr%4096 != p.Off%4096 {
		return Segment{}, refuse(path, "segment at %#x is not page-congruent with its file offset %#x", p.Vaddr, p.Off)
	}
	return Segment{
		Vaddr:  p.Vaddr,
		Memsz:  p.Memsz,
		Data:   data[p.Off : p.Off+p.Filesz],
		Read:   p.Flags&elf.PF_R != 0,
		Write:  p.Flags&elf.PF_W != 0,
		Exec:   p.Flags&elf.PF_X != 0,
		Offset: p.Off,
	}, nil
}

func (img *Image) inExec(addr uint64) bool {
	for _, s := range img.Segments {
		if s.Exec && addr >= s.Vaddr && addr < s.Vaddr+s.Memsz {
			return true
		}
	}
	return false
}

// loadSymbols finds the Go line table; it is parsed on first use only,
// since a large program's table takes tens of milliseconds to parse and a
// tender needs it only to report a crash.
func (img *Image) loadSymbols(ef *elf.File) error {
	pcln := ef.Section(".gopclntab")
	text := ef.Section(".text")
	if pcln == nil || text == nil {
		return errors.New("not a Go program (no .gopclntab or .text section)")
	}
	var ok bool
	if img.pcln, ok = img.section(pcln); !ok {
		return errors.New("truncated .gopclntab")
	}
	img.text = text.Addr
	return nil
}

// section is s's bytes in the mapped file, without a copy: a copy would
// stay on the tender's heap as garbage for the guest's whole life (the
// symbol tables are a megabyte). It fails for a section with no bytes
// in the file, a compressed one, or one past the file's end.
func (img *Image) section(s *elf.Section) ([]byte, bool) {
	if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_COMPRESSED != 0 ||
		s.Offset > uint64(len(img.data)) || s.Size > uint64(len(img.data))-s.Offset {
		return nil, false
	}
	return img.data[s.Offset : s.Offset+s.Size], true
}

func (img *Image) symbols() *gosym.Table {
	img.symOnce.Do(func() {
		if t, err := gosym.NewTable(nil, gosym.NewLineTable(img.pcln, img.text)); err == nil {
			img.table = t
		}
	})
	return img.table
}

// Frame is one symbolized program counter.
type Frame struct {
	PC        uint64
	Function  string
	File      string
	Line      int
	StartLine int // the line of the function's declaration (0 if unknown)
}

func (f Frame) String() string {
	if f.Function == "" {
		return fmt.Sprintf("%#x ?", f.PC)
	}
	return fmt.Sprintf("%s\n\t%s:%d pc=%#x", f.Function, f.File, f.Line, f.PC)
}

// Symbolize names the function, file and line of pc.
func (img *Image) Symbolize(pc uint64) Frame {
	fr := Frame{PC: pc}
	t := img.symbols()
	if t == nil {
		return fr
	}
	file, line, fn := t.PCToLine(pc)
	if fn != nil {
		fr.Function, fr.File, fr.Line = fn.Name, file, line
		fr.StartLine = img.startLine(fn.Entry)
	}
	return fr
}

// startLine reads the declaration line of the function at entry from its
// record in the pclntab (Go 1.20 and later), which debug/gosym does not
// expose; the line of the entry PC is not it when a function has no
// prologue. A CPU profile needs it for go build -pgo.
func (img *Image) startLine(entry uint64) int {
	const (
		magic     = 0xfffffff1 // Go 1.20+
		headerLen = 8 + 8*8    // magic, pads, minLC, ptrSize, then eight words
		startOff  = 36         // _func.startLine
	)
	p := img.pcln
	if len(p) < headerLen || binary.LittleEndian.Uint32(p) != magic || p[7] != 8 {
		return 0
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(p[8+8*i:]) }
	nfunc, textStart, funcTab := word(0), word(2), word(7)
	if textStart == 0 { // left for the runtime to fill in: the text section's start
		textStart = img.text
	}
	if entry < textStart || funcTab > uint64(len(p)) || nfunc > (uint64(len(p))-funcTab)/8 {
		return 0
	}
	tab := p[funcTab:]
	off := uint32(entry - textStart)
	// The table is sorted by entry offset: {entryOff, funcOff uint32} each.
	i := sort.Search(int(nfunc), func(i int) bool { return binary.LittleEndian.Uint32(tab[8*i:]) >= off })
	if i == int(nfunc) || binary.LittleEndian.Uint32(tab[8*i:]) != off {
		return 0
	}
	f := uint64(binary.LittleEndian.Uint32(tab[8*i+4:]))
	if f+startOff+4 > uint64(len(tab)) {
		return 0
	}
	return int(int32(binary.LittleEndian.Uint32(tab[f+startOff:])))
}

// Funcs returns the address ranges of the named functions, from the ELF
// symbol table, in one pass that allocates nothing per symbol; an
// assembly function is also found under its ABI0 name (name.abi0). Missing
// names are absent from the result.
func (img *Image) Funcs(names ...string) map[string][2]uint64 {
	want := map[string]string{}
	// Most symbols are rejected on their first 8 bytes alone, before the
	// name's end is looked for: a pass over a 13 MB image's 25,000 symbols
	// took 0.5 ms of every start.
	var heads []uint64
	short := false
	for _, n := range names {
		want[n] = n
		want[n+".abi0"] = n
		if len(n) < 8 {
			short = true
		} else if h := binary.LittleEndian.Uint64([]byte(n)); !slices.Contains(heads, h) {
			heads = append(heads, h)
		}
	}
	out := map[string][2]uint64{}
	ef, err := elf.NewFile(bytes.NewReader(img.data))
	if err != nil {
		return out
	}
	symtab, strtab := ef.Section(".symtab"), ef.Section(".strtab")
	if symtab == nil || strtab == nil {
		return out
	}
	syms, ok1 := img.section(symtab)
	strs, ok2 := img.section(strtab)
	if !ok1 || !ok2 {
		return out
	}
	for off := 0; off+24 <= len(syms); off += 24 {
		e := syms[off:]
		if elf.ST_TYPE(e[4]) != elf.STT_FUNC {
			continue
		}
		nameOff := int(binary.LittleEndian.Uint32(e))
		if nameOff >= len(strs) {
			continue
		}
		if !short && (nameOff+8 > len(strs) || !slices.Contains(heads, binary.LittleEndian.Uint64(strs[nameOff:]))) {
			continue
		}
		end := bytes.IndexByte(strs[nameOff:], 0)
		if end < 0 {
			continue
		}
		if n, ok := want[string(strs[nameOff:nameOff+end])]; ok {
			v, size := binary.LittleEndian.Uint64(e[8:]), binary.LittleEndian.Uint64(e[16:])
			out[n] = [2]uint64{v, v + size}
		}
	}
	return out
}

// Text returns the program's bytes at [addr, addr+n) if they lie in a
// loaded segment.
func (img *Image) Text(addr, n uint64) ([]byte, bool) {
	for _, s := range img.Segments {
		if addr >= s.Vaddr && addr+n <= s.Vaddr+uint64(len(s.Data)) {
			return s.Data[addr-s.Vaddr : addr-s.Vaddr+n], true
		}
	}
	return nil, false
}

// Describe is a one-line summary for reports and `mote inspect`.
func (img *Image) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %d bytes, entry %#x, %d segments", img.Path, img.GoVersion, img.Size, img.Entry, len(img.Segments))
	if v := img.Settings["GOAMD64"]; v != "" {
		fmt.Fprintf(&b, ", GOAMD64=%s", v)
	}
	return b.String()
}

func pageUp(v uint64) uint64   { return (v + 4095) &^ 4095 }
func pageDown(v uint64) uint64 { return v &^ 4095 }
