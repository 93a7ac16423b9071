package hvt

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Guest memory.
//
// Guest-physical memory is one KVM slot backed by lazily allocated host
// memory (MAP_NORESERVE): only pages the guest touches cost the host. The
// guest's virtual address space is a list of areas (reserved or committed)
// kept by the tender; physical pages are bound to committed virtual pages
// on first touch, by the page-fault exit, in 2 MiB pages where a whole
// aligned 2 MiB lies in one committed area and in runs of 4 KiB pages
// elsewhere. The program's file pages are one or two more slots above RAM
// (machine.mapImage), mapped by the page tables from the start.
//
// Page-table entries only ever go from not-present to present (or gain
// write permission): a binding is never removed or moved. kvm-pvm shadows
// guest page tables, and removing or retargeting a live entry would need a
// TLB shootdown across vCPUs; a transition from not-present needs none,
// since a stale not-present entry only faults again. munmap and
// MADV_DONTNEED therefore give the pages back to the host (madvise) but
// keep the binding, so the area reads as zeros if it is used again, and the
// tender's allocator reuses freed addresses first.

const (
	pageSize = 4096
	hugeSize = 2 << 20

	ptePresent  = 1 << 0
	pteWrite    = 1 << 1
	pteUser     = 1 << 2
	pteAccessed = 1 << 5
	pteDirty    = 1 << 6
	ptePS       = 1 << 7
	pteNX       = 1 << 63
	pteAddr     = 0x000ffffffffff000

	// faultAround is how many 4 KiB pages one fault binds at most.
	faultAround = 16
)

// The guest's virtual layout.
const (
	userTop   = 1 << 47
	stackTop  = 0x7ffffffff000
	stackSize = 8 << 20
	vdsoBase  = 0x7ffff7ff0000
	shimBase  = 0x200000       // below the Go text at 0x400000, in reach of rel32 calls
	ringBase  = 0x40000000     // NIC frame rings, 2 MiB each
	mmapTop   = 0x7ff000000000 // mmap(NULL) allocates downward from here
	mmapFloor = 1 << 32        // and never below this
	kernBase  = 0x7f8000000000 // supervisor-only pages; kvm-pvm refuses the upper half
)

// Area kinds: what a virtual area holds.
const (
	areaAnon   = iota // anonymous memory the guest mapped
	areaImage         // the program's own segments
	areaStack         // the main thread's stack
	areaVDSO          // the vDSO and its data page
	areaShim          // the system-call shim and its data
	areaDevice        // device memory shared with the tender (NIC rings)
	areaKernel        // the tender's pages: IDT, stubs, SYSCALL entry, doorbell, per-vCPU pages
)

// Protections of an area (Linux PROT_ values).
const (
	protRead  = unix.PROT_READ
	protWrite = unix.PROT_WRITE
	protExec  = unix.PROT_EXEC
)

type area struct {
	start, end uint64
	prot       int // 0: reserved (PROT_NONE)
	kind       int
}

// errOOM is returned when guest memory is exhausted.
type oomError struct {
	what        string
	used, limit uint64
}

func (e *oomError) Error() string {
	return fmt.Sprintf("guest out of memory: %s (%d MiB of %d MiB in use)", e.what, e.used>>20, e.limit>>20)
}

// memory is a guest's physical memory and address space.
type memory struct {
	mu    sync.Mutex
	host  []byte     // guest-physical [0, len(host)): RAM
	files []fileSlot // above RAM: the program's pages
	areas []area     // sorted, disjoint

	sysNext  uint64 // next free 4 KiB page for tables, kernel pages and user pages (grows up)
	hugeNext uint64 // lowest bound 2 MiB chunk (grows down)

	limit     uint64 // bytes of user memory the guest may bind (-m)
	bound     uint64 // bytes of user memory bound
	committed uint64 // bytes of committed (readable) anonymous areas
	commitMax uint64

	pml4 uint64
}

// fileSlot is guest-physical memory [base, base+len(b)) mapped from the
// program's file or its shared copy (see machine.mapImage).
type fileSlot struct {
	base uint64
	b    []byte
}

func newMemory(limit, reserve uint64) (*memory, error) {
	size := alignUp(limit, hugeSize) + alignUp(reserve, hugeSize)
	host, err := mapGuestRAM(size)
	if err != nil {
		return nil, fmt.Errorf("hvt: reserving %d MiB of guest memory: %w", size>>20, err)
	}
	m := &memory{
		host:      host,
		sysNext:   pageSize, // physical page 0 stays unused
		hugeNext:  size,
		limit:     limit,
		commitMax: max(2*limit, limit+64<<20),
	}
	m.pml4, err = m.allocPage()
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *memory) release() {
	for _, f := range m.files {
		unix.Munmap(f.b)
	}
	unix.MunmapPtr(unsafe.Pointer(&m.host[0]), uintptr(len(m.host)))
}

// mapGuestRAM maps lazily allocated host memory for the guest, 2 MiB
// aligned and eligible for transparent huge pages: KVM can back a guest 2
// MiB page with one host huge page only if guest-physical and host
// addresses agree modulo 2 MiB, and every page KVM maps separately costs a
// fault on first touch (tens of µs under nested paging).
func mapGuestRAM(size uint64) ([]byte, error) {
	const flags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size+hugeSize), unix.PROT_NONE, flags)
	if err != nil {
		return nil, err
	}
	head := (hugeSize - uintptr(p)%hugeSize) % hugeSize
	aligned := unsafe.Add(p, head)
	if _, err := unix.MmapPtr(-1, 0, aligned, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, flags|unix.MAP_FIXED); err != nil {
		unix.MunmapPtr(p, uintptr(size+hugeSize))
		return nil, err
	}
	if head > 0 {
		unix.MunmapPtr(p, head)
	}
	if tail := hugeSize - head; tail > 0 {
		unix.MunmapPtr(unsafe.Add(aligned, size), tail)
	}
	host := unsafe.Slice((*byte)(aligned), size)
	// No MADV_HUGEPAGE: huge pages halve the first-touch cost under nested
	// paging, but each one zeroes 2 MiB, inflates RSS, and direct compaction
	// stalls starts by up to 100 ms.
	return host, nil
}

// charge counts n more bytes of RAM as the guest's. Every page the guest
// can make the host hold counts against -m: its own pages, its .bss, and
// the page tables, shim, vDSO and rings made for it.
func (m *memory) charge(n uint64) error {
	if m.bound+n > m.limit {
		return &oomError{"the guest touched more memory than -m allows", m.bound, m.limit}
	}
	m.bound += n
	return nil
}

// allocPage returns a zeroed physical page. Callers hold mu or own m alone.
func (m *memory) allocPage() (uint64, error) {
	if m.sysNext+pageSize > m.hugeNext {
		return 0, &oomError{"no physical page left", m.bound, m.limit}
	}
	if err := m.charge(pageSize); err != nil {
		return 0, err
	}
	pa := m.sysNext
	m.sysNext += pageSize
	return pa, nil
}

func (m *memory) allocHuge() (uint64, error) {
	next := (m.hugeNext - hugeSize) &^ (hugeSize - 1)
	if next < m.sysNext || m.hugeNext < hugeSize {
		return 0, &oomError{"no physical 2 MiB page left", m.bound, m.limit}
	}
	if err := m.charge(hugeSize); err != nil {
		return 0, err
	}
	m.hugeNext = next
	return next, nil
}

// entry returns a pointer to the page-table entry of va at level (4: PML4,
// 3: PDPT, 2: PD, 1: PT), creating intermediate tables if create is set.
// It returns nil if a table is missing or a 2 MiB page covers va.
func (m *memory) entry(va uint64, level int, create bool) (*uint64, error) {
	table := m.pml4
	for l := 4; ; l-- {
		idx := (va >> (12 + 9*uint(l-1))) & 511
		e := m.pte(table, idx)
		if e == nil {
			return nil, fmt.Errorf("hvt: the page table for %#x is at %#x, outside RAM", va, table)
		}
		if l == level {
			return e, nil
		}
		v := atomic.LoadUint64(e)
		if v&ptePresent == 0 {
			if !create {
				return nil, nil
			}
			pa, err := m.allocPage()
			if err != nil {
				return nil, err
			}
			v = pa | ptePresent | pteWrite | pteUser | pteAccessed
			atomic.StoreUint64(e, v)
		} else if v&ptePS != 0 {
			return nil, nil
		}
		table = v & pteAddr
	}
}

// phys is the host view of guest-physical memory from pa to the end of its
// slot: RAM or the program file. The tender calls it only with addresses
// it knows are memory; what a guest's page tables say is checked with slot.
func (m *memory) phys(pa uint64) []byte {
	if b, ok := m.slot(pa); ok {
		return b
	}
	panic(fmt.Sprintf("hvt: guest-physical %#x is not memory", pa))
}

// slot is phys for any address: false for one that no memory backs (the
// doorbells, MMIO mapped into the guest's address space).
func (m *memory) slot(pa uint64) ([]byte, bool) {
	if pa < uint64(len(m.host)) {
		return m.host[pa:], true
	}
	for _, f := range m.files {
		if pa >= f.base && pa-f.base < uint64(len(f.b)) {
			return f.b[pa-f.base:], true
		}
	}
	return nil, false
}

// pte is the host view of entry idx of the page table at guest-physical
// table, or nil if that is not RAM. The tender builds every table itself,
// in RAM the program cannot reach; the check keeps a corrupted table (a
// tender bug, or a guest that reached ring 0) from panicking the tender.
func (m *memory) pte(table, idx uint64) *uint64 {
	pa := table + idx*8
	if table >= uint64(len(m.host)) || pa+8 > uint64(len(m.host)) {
		return nil
	}
	return (*uint64)(unsafe.Pointer(&m.host[pa]))
}

// mapPage maps the 4 KiB page at va to pa with the given entry flags.
func (m *memory) mapPage(va, pa, flags uint64) error {
	e, err := m.entry(va, 1, true)
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("hvt: mapping %#x: covered by a 2 MiB page", va)
	}
	atomic.StoreUint64(e, pa|flags)
	return nil
}

// mapRange maps n 4 KiB pages from va to consecutive physical pages from
// pa, walking to each page table once rather than once per page.
func (m *memory) mapRange(va, pa uint64, n int, flags uint64) error {
	for n > 0 {
		e, err := m.entry(va, 1, true)
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("hvt: mapping %#x: covered by a 2 MiB page", va)
		}
		pt := (*[512]uint64)(unsafe.Pointer(uintptr(unsafe.Pointer(e)) - uintptr((va>>12)&511)*8))
		for i := (va >> 12) & 511; i < 512 && n > 0; i++ {
			atomic.StoreUint64(&pt[i], pa|flags)
			va, pa, n = va+pageSize, pa+pageSize, n-1
		}
	}
	return nil
}

// mapHuge maps the 2 MiB page at va to pa.
func (m *memory) mapHuge(va, pa, flags uint64) error {
	e, err := m.entry(va, 2, true)
	if err != nil {
		return err
	}
	if e == nil || atomic.LoadUint64(e)&ptePresent != 0 {
		return fmt.Errorf("hvt: mapping %#x: already mapped", va)
	}
	atomic.StoreUint64(e, pa|flags|ptePS)
	return nil
}

// translate walks the page tables: the physical address of va and the
// effective flags (user and write only if every level allows them).
func (m *memory) translate(va uint64) (pa uint64, flags uint64, ok bool) {
	table := m.pml4
	flags = pteUser | pteWrite
	for l := 4; l >= 1; l-- {
		e := m.pte(table, (va>>(12+9*uint(l-1)))&511)
		if e == nil {
			return 0, 0, false
		}
		v := atomic.LoadUint64(e)
		if v&ptePresent == 0 {
			return 0, 0, false
		}
		flags &= v | ^uint64(pteUser|pteWrite)
		if l == 2 && v&ptePS != 0 {
			return v&pteAddr&^(hugeSize-1) | va&(hugeSize-1), flags, true
		}
		table = v & pteAddr
	}
	return table | va&(pageSize-1), flags, true
}

// unbound is how far from va the page tables map nothing: the rest of the
// span of the entry where translate's walk stops (at least the page).
func (m *memory) unbound(va uint64) uint64 {
	table := m.pml4
	for l := 4; l >= 1; l-- {
		shift := 12 + 9*uint(l-1)
		e := m.pte(table, va>>shift&511)
		if e == nil {
			return pageSize - va&(pageSize-1)
		}
		v := atomic.LoadUint64(e)
		if v&ptePresent == 0 || l == 2 && v&ptePS != 0 {
			span := uint64(1) << shift
			return span - va&(span-1)
		}
		table = v & pteAddr
	}
	return pageSize - va&(pageSize-1)
}

// protFlags is the page-table entry flags for a protection. Entries start
// accessed, and writable ones dirty: nothing in the guest reads the bits,
// and KVM maps a faulting page's neighbours along with it only where their
// entries are marked accessed (see package imagecache).
func protFlags(prot int) uint64 {
	f := uint64(ptePresent | pteUser | pteAccessed)
	if prot&protWrite != 0 {
		f |= pteWrite | pteDirty
	}
	if prot&protExec == 0 {
		f |= pteNX
	}
	return f
}

// find returns the index of the area containing va, or -1.
func (m *memory) find(va uint64) int {
	i := sort.Search(len(m.areas), func(i int) bool { return m.areas[i].end > va })
	if i < len(m.areas) && m.areas[i].start <= va {
		return i
	}
	return -1
}

// fault binds physical memory under va after a not-present or write fault.
// It reports false if va is not in an area that allows the access, which
// the caller turns into SIGSEGV.
func (m *memory) fault(va uint64, write bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.faultLocked(va, write)
}

func (m *memory) faultLocked(va uint64, write bool) (bool, error) {
	i := m.find(va)
	if i < 0 {
		return false, nil
	}
	a := m.areas[i]
	if a.prot&protRead == 0 || write && a.prot&protWrite == 0 {
		return false, nil
	}
	flags := protFlags(a.prot)
	if _, f, ok := m.translate(va); ok {
		// Bound already: another vCPU won the race, or the area gained
		// write permission since the page was bound.
		if write && f&pteWrite == 0 {
			if e, _ := m.entry(va, 1, false); e != nil {
				atomic.StoreUint64(e, atomic.LoadUint64(e)|pteWrite|pteDirty)
			} else if e, _ := m.entry(va, 2, false); e != nil {
				atomic.StoreUint64(e, atomic.LoadUint64(e)|pteWrite|pteDirty)
			}
		}
		return true, nil
	}
	chunk := va &^ (hugeSize - 1)
	if a.start <= chunk && chunk+hugeSize <= a.end {
		pde, err := m.entry(chunk, 2, true)
		if err != nil {
			return false, err
		}
		if pde != nil && atomic.LoadUint64(pde)&ptePresent == 0 {
			pa, err := m.allocHuge()
			if err != nil {
				return false, err
			}
			atomic.StoreUint64(pde, pa|flags|ptePS)
			return true, nil
		}
	}
	page := va &^ (pageSize - 1)
	for n := 0; n < faultAround && page < a.end && page < chunk+hugeSize; n, page = n+1, page+pageSize {
		if _, _, ok := m.translate(page); ok {
			if n == 0 {
				continue
			}
			break
		}
		if n > 0 && m.bound+2*pageSize > m.limit {
			break // keep room for a page table the next fault may need
		}
		pa, err := m.allocPage()
		if err != nil {
			return false, err
		}
		if err := m.mapPage(page, pa, flags); err != nil {
			return false, err
		}
	}
	return true, nil
}

// insert adds an area, replacing whatever it overlaps, and merges it with
// neighbours of the same kind and protection: a Go heap grown chunk by
// chunk stays one area.
func (m *memory) insert(a area) {
	m.remove(a.start, a.end)
	m.account(a, +1)
	i := sort.Search(len(m.areas), func(i int) bool { return m.areas[i].start >= a.end })
	if i > 0 && m.areas[i-1].end == a.start && m.areas[i-1].prot == a.prot && m.areas[i-1].kind == a.kind {
		i--
		a.start = m.areas[i].start
		m.areas = append(m.areas[:i], m.areas[i+1:]...)
	}
	if i < len(m.areas) && m.areas[i].start == a.end && m.areas[i].prot == a.prot && m.areas[i].kind == a.kind {
		a.end = m.areas[i].end
		m.areas = append(m.areas[:i], m.areas[i+1:]...)
	}
	m.areas = append(m.areas, area{})
	copy(m.areas[i+1:], m.areas[i:])
	m.areas[i] = a
}

// remove cuts [start, end) out of the area list.
func (m *memory) remove(start, end uint64) {
	var out []area
	for _, a := range m.areas {
		if a.end <= start || a.start >= end {
			out = append(out, a)
			continue
		}
		cut := area{start: max(a.start, start), end: min(a.end, end), prot: a.prot, kind: a.kind}
		m.account(cut, -1)
		if a.start < start {
			out = append(out, area{a.start, start, a.prot, a.kind})
		}
		if a.end > end {
			out = append(out, area{end, a.end, a.prot, a.kind})
		}
	}
	m.areas = out
}

func (m *memory) account(a area, sign int) {
	if a.kind == areaAnon && a.prot != 0 {
		if sign > 0 {
			m.committed += a.end - a.start
		} else {
			m.committed -= a.end - a.start
		}
	}
}

// overlaps reports whether [start, end) meets an area, or only areas of
// kind anon if anonOK is set (MAP_FIXED may replace those).
func (m *memory) overlaps(start, end uint64, anonOK bool) bool {
	for _, a := range m.areas {
		if a.end > start && a.start < end && (!anonOK || a.kind != areaAnon) {
			return true
		}
	}
	return false
}

// place finds a free range of length n below mmapTop, highest first.
func (m *memory) place(n uint64) (uint64, bool) {
	align := uint64(pageSize)
	if n >= hugeSize {
		align = hugeSize
	}
	hi := uint64(mmapTop)
	for i := len(m.areas) - 1; i >= -1; i-- {
		lo := uint64(mmapFloor)
		if i >= 0 {
			if m.areas[i].start >= mmapTop {
				continue
			}
			lo = max(lo, m.areas[i].end)
		}
		if hi >= n {
			if start := (hi - n) &^ (align - 1); start >= lo && start+n <= hi {
				return start, true
			}
		}
		if i >= 0 {
			hi = min(hi, m.areas[i].start)
		}
	}
	return 0, false
}

// release gives the host memory under [start, end) back (MADV_DONTNEED),
// keeping the bindings: the range reads as zeros when touched again.
func (m *memory) discard(start, end uint64) {
	var runStart, runEnd uint64
	flush := func() {
		// Only RAM: a binding beyond it is MMIO (a doorbell), not memory.
		if stop := min(runEnd, uint64(len(m.host))); stop > runStart {
			unix.Madvise(m.host[runStart:stop], unix.MADV_DONTNEED)
		}
		runStart, runEnd = 0, 0
	}
	for va := start; va < end; {
		pa, _, ok := m.translate(va)
		step := uint64(pageSize)
		if ok {
			if e, _ := m.entry(va, 1, false); e == nil {
				step = hugeSize - va&(hugeSize-1)
			}
			step = min(step, end-va)
			if pa == runEnd && runEnd != 0 {
				runEnd += step
			} else {
				flush()
				runStart, runEnd = pa, pa+step
			}
		} else {
			// An unbound run: skip what the missing entry would have mapped.
			flush()
			step = min(m.unbound(va), end-va)
		}
		va += step
	}
	flush()
}

// copyIn reads guest virtual memory at va into dst, as the guest's user
// mode could: it faults pages in and fails on anything the guest itself
// could not read.
func (m *memory) copyIn(va uint64, dst []byte) error {
	return m.access(va, len(dst), false, func(host []byte, off int) { copy(dst[off:], host) })
}

// copyOut writes src into guest virtual memory at va, with the guest's own
// permissions.
func (m *memory) copyOut(va uint64, src []byte) error {
	return m.access(va, len(src), true, func(host []byte, off int) { copy(host, src[off:]) })
}

// hostSlices is guest virtual memory [va, va+n) as the host's views of the
// pages under it, with the guest's own permissions (faulting pages in),
// neighbours that are neighbours in guest-physical memory merged: I/O
// straight from and into guest memory (readv, writev), so that a call
// blocked in the tender holds no copy of its buffer. The views stay valid
// for the machine's life, since bindings are never removed (memory.go).
func (m *memory) hostSlices(va uint64, n int, write bool) ([][]byte, error) {
	var out [][]byte
	err := m.access(va, n, write, func(host []byte, _ int) {
		// Neighbours in one slot: the last view reaches on into host.
		if k := len(out) - 1; k >= 0 && cap(out[k]) > len(out[k]) && &out[k][:len(out[k])+1][len(out[k])] == &host[0] {
			out[k] = out[k][:len(out[k])+len(host)]
		} else {
			out = append(out, host)
		}
	})
	return out, err
}

func (m *memory) access(va uint64, n int, write bool, f func(host []byte, off int)) error {
	if n == 0 {
		return nil
	}
	if va >= userTop || uint64(n) > userTop-va {
		return unix.EFAULT
	}
	off := 0
	for off < n {
		pa, err := m.hostAddr(va+uint64(off), write)
		if err != nil {
			return err
		}
		chunk := min(n-off, int(pageSize-(va+uint64(off))&(pageSize-1)))
		f(m.phys(pa)[:chunk], off)
		off += chunk
	}
	return nil
}

// hostAddr is the guest-physical address of user address va, faulting it
// in if it lies in a committed area. Failure is EFAULT.
func (m *memory) hostAddr(va uint64, write bool) (uint64, error) {
	if va >= userTop {
		return 0, unix.EFAULT
	}
	for try := 0; try < 2; try++ {
		pa, f, ok := m.translate(va)
		if ok && f&pteUser != 0 && (!write || f&pteWrite != 0) {
			if _, mem := m.slot(pa); !mem {
				return 0, unix.EFAULT // a doorbell: the guest may store there, not the tender
			}
			return pa, nil
		}
		ok, err := m.fault(va, write)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, unix.EFAULT
		}
	}
	return 0, unix.EFAULT
}

// word32 returns the host view of an aligned 32-bit guest word, for futexes.
func (m *memory) word32(va uint64, write bool) (*uint32, error) {
	if va&3 != 0 {
		return nil, unix.EINVAL
	}
	pa, err := m.hostAddr(va, write)
	if err != nil {
		return nil, err
	}
	return (*uint32)(unsafe.Pointer(&m.phys(pa)[0])), nil
}

func (m *memory) readU64(va uint64) (uint64, error) {
	var b [8]byte
	if err := m.copyIn(va, b[:]); err != nil {
		return 0, err
	}
	return le.Uint64(b[:]), nil
}

func (m *memory) writeU64(va, v uint64) error {
	var b [8]byte
	le.PutUint64(b[:], v)
	return m.copyOut(va, b[:])
}

// readString reads a NUL-terminated string of at most max bytes.
func (m *memory) readString(va uint64, maxLen int) (string, error) {
	var out []byte
	var b [1]byte
	for len(out) < maxLen {
		if err := m.copyIn(va+uint64(len(out)), b[:]); err != nil {
			return "", err
		}
		if b[0] == 0 {
			return string(out), nil
		}
		out = append(out, b[0])
	}
	return "", unix.ENAMETOOLONG
}

// kernelPage allocates a physical page and maps it at kernel address va
// (supervisor only). It runs before the guest does.
func (m *memory) kernelPage(va uint64, exec bool) (uint64, error) {
	pa, err := m.allocPage()
	if err != nil {
		return 0, err
	}
	flags := uint64(ptePresent | pteWrite)
	if exec {
		flags = ptePresent
	} else {
		flags |= pteNX
	}
	return pa, m.mapPage(va, pa, flags)
}

// populate binds [start, end) eagerly with fresh, consecutive pages and
// the given protection, copying data to start+dataOff; used for the
// image's .bss, the vDSO and the shim. The pages are mapped a page table
// at a time: a Go program's .bss is tens of megabytes.
func (m *memory) populate(start, end uint64, prot int, data []byte, dataOff uint64) error {
	dataOff += start & (pageSize - 1)
	start &^= pageSize - 1
	n := (alignUp(end, pageSize) - start) / pageSize
	if m.sysNext+n*pageSize > m.hugeNext {
		return &oomError{"no physical page left", m.bound, m.limit}
	}
	if err := m.charge(n * pageSize); err != nil {
		return err
	}
	pa := m.sysNext
	m.sysNext += n * pageSize
	if err := m.mapRange(start, pa, int(n), protFlags(prot)); err != nil {
		return err
	}
	if dataOff < n*pageSize {
		copy(m.host[pa+dataOff:pa+n*pageSize], data)
	}
	return nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// peek reads a user word only if it is mapped, binding nothing.
func (m *memory) peek(va uint64) (uint64, bool) {
	if va >= userTop-8 {
		return 0, false
	}
	pa, f, ok := m.translate(va)
	if !ok || f&pteUser == 0 || va&(pageSize-1) > pageSize-8 {
		return 0, false
	}
	b, ok := m.slot(pa)
	if !ok {
		return 0, false
	}
	return le.Uint64(b), true
}

// prefault binds [start, end) now, as faults would; failures are left for
// the faults to report.
func (m *memory) prefault(start, end uint64) {
	for va := start; va < end; va += pageSize {
		if _, _, ok := m.translate(va); !ok {
			if ok, err := m.faultLocked(va, true); !ok || err != nil {
				return
			}
		}
	}
}
