package hvt

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/imagecache"
)

// load maps the image and the main thread's stack and returns the entry
// point and initial stack pointer. The text pages under patches are mapped
// privately, so that writing the patches leaves any shared copy alone.
func (m *machine) load(patches []textPatch) (entry, sp uint64, err error) {
	mem := m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	shared, private, err := m.mapImage()
	if err != nil {
		return 0, 0, err
	}
	for _, s := range m.img.Segments {
		prot := 0
		if s.Read {
			prot |= protRead
		}
		if s.Write {
			prot |= protWrite
		}
		if s.Exec {
			prot |= protExec
		}
		start, end := s.Vaddr&^(pageSize-1), alignUp(s.Vaddr+s.Memsz, pageSize)
		fileEnd := start // pages below this map the file itself
		if len(mem.files) > 0 {
			fileEnd = max(start, (s.Vaddr+uint64(len(s.Data)))&^(pageSize-1))
			base := shared
			if s.Write {
				base = private
			}
			off := s.Offset - (s.Vaddr - start) // file offset of start
			if err := mem.mapRange(start, base+off, int((fileEnd-start)/pageSize), protFlags(prot)); err != nil {
				return 0, 0, fmt.Errorf("hvt: loading segment at %#x: %w", s.Vaddr, err)
			}
			if base != private {
				for _, p := range patches {
					for va := p.va &^ (pageSize - 1); va < p.va+uint64(len(p.code)); va += pageSize {
						if start <= va && va < fileEnd {
							if err := mem.mapPage(va, private+off+va-start, protFlags(prot)); err != nil {
								return 0, 0, err
							}
						}
					}
				}
			}
		}
		// The rest — a last page partly from the file, and the zeroed
		// .bss — is memory of the guest's own.
		if fileEnd < end {
			data, dataOff := s.Data, uint64(0)
			if fileEnd >= s.Vaddr {
				data = s.Data[min(fileEnd-s.Vaddr, uint64(len(s.Data))):]
			} else {
				dataOff = s.Vaddr - fileEnd
			}
			if err := mem.populate(fileEnd, end, prot, data, dataOff); err != nil {
				return 0, 0, fmt.Errorf("hvt: loading segment at %#x: %w", s.Vaddr, err)
			}
		}
		mem.insert(area{start, end, prot, areaImage})
	}
	mem.insert(area{stackTop - stackSize, stackTop, protRead | protWrite, areaStack})
	sp, err = m.buildStack()
	return m.img.Entry, sp, err
}

// mapImage maps the program file as memory slots above RAM and the
// doorbell, and returns the guest-physical addresses at which the file
// starts for read-only and for writable pages. The guest's program pages
// are the file's own pages, shared through the host's page cache by every
// instance until one writes (copy on write): nothing is copied at boot.
// With an image cache, read-only pages come instead from a shared mapping
// of the image's copy in tmpfs, which KVM maps several pages per fault
// (package imagecache); writable ones from a private mapping of that copy.
// An image parsed from memory has no file: load then copies it.
func (m *machine) mapImage() (shared, private uint64, err error) {
	f := m.img.File()
	if f == nil {
		return 0, 0, nil
	}
	src := f
	if m.cfg.ImageCache != "" {
		if c, err := (imagecache.Cache{Dir: m.cfg.ImageCache}).Open(f); err == nil {
			defer c.Close()
			src = c
		} else if m.trace != nil {
			m.trace.printf("booting from the image file: %v", err)
		}
	}
	size := int(alignUp(uint64(m.img.Size), pageSize))
	base := alignUp(uint64(len(m.mem.host))+pageSize, hugeSize)
	slot := func(flags int) (uint64, error) {
		prot, set := unix.PROT_READ|unix.PROT_WRITE, m.vm.SetMemory
		if flags == unix.MAP_SHARED {
			// The copy that every instance of the image runs: nothing
			// in the guest may write it, even from ring 0.
			prot = unix.PROT_READ
			if n, _ := m.sys.Check(kvm.CapReadOnlyMem); n > 0 {
				set = m.vm.SetReadOnlyMemory
			}
		}
		b, err := unix.Mmap(int(src.Fd()), 0, size, prot, flags)
		if err != nil {
			return 0, fmt.Errorf("hvt: mapping %s: %w", m.img.Path, err)
		}
		pa := base
		if err := set(uint32(1+len(m.mem.files)), pa, b); err != nil {
			unix.Munmap(b)
			return 0, err
		}
		m.mem.files = append(m.mem.files, fileSlot{pa, b})
		base = alignUp(pa+uint64(size), hugeSize)
		return pa, nil
	}
	if private, err = slot(unix.MAP_PRIVATE); err != nil {
		return 0, 0, err
	}
	if src == f {
		return private, private, nil
	}
	if shared, err = slot(unix.MAP_SHARED); err != nil {
		return 0, 0, err
	}
	return shared, private, nil
}

// buildStack writes argc, argv, envp and auxv as Linux does for a static
// executable.
func (m *machine) buildStack() (uint64, error) {
	mem := m.mem
	top := uint64(stackTop)
	var werr error
	push := func(b []byte) uint64 {
		top -= uint64(len(b))
		if werr == nil {
			werr = copyOutLocked(mem, top, b)
		}
		return top
	}
	argv0 := filepath.Base(m.cfg.Image)
	args := append([]string{argv0}, m.cfg.Args...)
	env := m.guestEnv()
	var argPtrs, envPtrs []uint64
	for _, a := range args {
		argPtrs = append(argPtrs, push(append([]byte(a), 0)))
	}
	for _, e := range env {
		envPtrs = append(envPtrs, push(append([]byte(e), 0)))
	}
	platform := push([]byte("x86_64\x00"))
	var rnd [16]byte
	if _, err := readRandom(rnd[:]); err != nil {
		return 0, err
	}
	random := push(rnd[:])
	execfn := argPtrs[0]

	auxv := [][2]uint64{
		{3, 0}, // AT_PHDR: none (the runtime does not need it)
		{6, pageSize},
		{17, 100}, // AT_CLKTCK
		{9, m.img.Entry},
		{11, 0}, {12, 0}, {13, 0}, {14, 0}, // uid, euid, gid, egid
		{23, 0}, // AT_SECURE
		{25, random},
		{15, platform},
		{31, execfn},
		{33, vdsoBase}, // AT_SYSINFO_EHDR
		{0, 0},
	}
	words := []uint64{uint64(len(args))}
	words = append(words, argPtrs...)
	words = append(words, 0)
	words = append(words, envPtrs...)
	words = append(words, 0)
	for _, a := range auxv {
		if a[0] == 3 {
			continue
		}
		words = append(words, a[0], a[1])
	}
	top &^= 15
	if len(words)%2 == 1 {
		top -= 8
	}
	buf := make([]byte, 8*len(words))
	for i, w := range words {
		le.PutUint64(buf[8*i:], w)
	}
	sp := push(buf)
	if werr != nil {
		return 0, fmt.Errorf("hvt: building the initial stack: %w", werr)
	}
	if sp < stackTop-stackSize/2 {
		return 0, errors.New("hvt: arguments and environment do not fit the stack")
	}
	return sp, nil
}

// copyOutLocked writes guest memory while mem.mu is held (boot only).
func copyOutLocked(mem *memory, va uint64, b []byte) error {
	for len(b) > 0 {
		pa, f, ok := mem.translate(va)
		if !ok || f&pteWrite == 0 {
			if ok2, err := mem.faultLocked(va, true); err != nil || !ok2 {
				return fmt.Errorf("address %#x not writable", va)
			}
			continue
		}
		n := copy(mem.phys(pa)[:pageSize-va&(pageSize-1)], b)
		b, va = b[n:], va+uint64(n)
	}
	return nil
}

// guestEnv is the guest's environment: the user's, plus GOMEMLIMIT from -m
// unless set, so the Go collector works within the guest's memory.
func (m *machine) guestEnv() []string {
	env := append([]string(nil), m.cfg.Env...)
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	env = append(env, m.manifest)
	if !has("GOMEMLIMIT") {
		env = append(env, "GOMEMLIMIT="+strconv.FormatUint(m.cfg.Memory*3/4, 10))
	}
	return env
}
