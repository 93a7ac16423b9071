package hvt

import (
	"golang.org/x/sys/unix"
)

// Memory system calls. Only anonymous memory exists (shared anonymous
// memory is ordinary memory: a guest is one process and never forks);
// executable mappings are refused (the guest's code is its image, W^X
// holds), and files of the tree are mapped privately, as copies.

// prefaultMax is the largest writable mapping bound at mmap time rather
// than fault by fault: the Go runtime maps small areas to use them at once,
// and each fault is an exit, while a binding costs the host nothing until
// the guest touches the memory.
const prefaultMax = 4 << 20

const mapAllowed = unix.MAP_PRIVATE | unix.MAP_SHARED | unix.MAP_ANONYMOUS | unix.MAP_FIXED | unix.MAP_NORESERVE |
	unix.MAP_FIXED_NOREPLACE | unix.MAP_POPULATE | unix.MAP_STACK

// maxAreas bounds a guest's mappings, as Linux's vm.max_map_count (65530)
// does: each costs the tender memory and every later call a scan. A Go
// guest has a few dozen, merged (memory.insert). A call that could split
// an area needs room for two more.
const maxAreas = 4096

func sysMmap(t *thread, a *sysArgs) int64 {
	addr, length, prot, flags := a.a[0], a.a[1], int(a.a[2]), int(a.a[3])
	if length == 0 {
		return -int64(unix.EINVAL)
	}
	if length > userTop {
		return -int64(unix.ENOMEM) // as Linux says of a length past TASK_SIZE
	}
	if flags&unix.MAP_ANONYMOUS == 0 {
		return t.mmapFile(a)
	}
	// MAP_SHARED_VALIDATE is both bits; its flags are checked below anyway.
	if flags&(unix.MAP_PRIVATE|unix.MAP_SHARED) == 0 || flags&^mapAllowed != 0 {
		return -int64(unix.EINVAL)
	}
	prot, res := checkProt(prot)
	if res != 0 {
		return res
	}
	length = alignUp(length, pageSize)
	m := t.m
	mem := m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	fixed := flags&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) != 0
	switch {
	case fixed:
		if addr&(pageSize-1) != 0 || addr < 1<<16 || addr >= userTop || length > userTop-addr {
			return -int64(unix.EINVAL)
		}
		if flags&unix.MAP_FIXED_NOREPLACE != 0 && mem.overlaps(addr, addr+length, false) {
			return -int64(unix.EEXIST)
		}
		if mem.overlaps(addr, addr+length, true) {
			return -int64(unix.EINVAL) // would replace the image, stack or vDSO
		}
	case addr != 0 && addr&(pageSize-1) == 0 && addr >= 1<<16 && addr < userTop && length <= userTop-addr &&
		!mem.overlaps(addr, addr+length, false):
		// The hint is free: honour it, as Linux does.
	default:
		var ok bool
		if addr, ok = mem.place(length); !ok {
			return -int64(unix.ENOMEM)
		}
	}
	if prot != 0 && mem.committed+length > mem.commitMax {
		m.oomSeen.Store(true)
		return -int64(unix.ENOMEM)
	}
	if len(mem.areas) > maxAreas-2 {
		return -int64(unix.ENOMEM)
	}
	if fixed {
		mem.discard(addr, addr+length) // a fresh mapping reads as zeros
	}
	mem.insert(area{addr, addr + length, prot, areaAnon})
	if prot&protWrite != 0 && length <= prefaultMax {
		mem.prefault(addr, addr+length)
	}
	return int64(addr)
}

// checkProt accepts PROT_NONE, READ and WRITE, refusing PROT_EXEC (the
// guest's code is its image: W^X) and making writable memory readable, as
// x86 cannot map it write-only.
func checkProt(prot int) (int, int64) {
	if prot&^(protRead|protWrite|protExec) != 0 {
		return 0, -int64(unix.EINVAL)
	}
	if prot&protExec != 0 {
		return 0, -int64(unix.EACCES)
	}
	if prot&protWrite != 0 {
		prot |= protRead
	}
	return prot, 0
}

// anonRange checks that [addr, addr+length) is page-aligned user memory
// that holds no image, stack or vDSO.
func anonRange(mem *memory, addr, length uint64) (uint64, bool) {
	length = alignUp(length, pageSize)
	if addr&(pageSize-1) != 0 || addr >= userTop || length > userTop-addr {
		return 0, false
	}
	return length, !mem.overlaps(addr, addr+length, true)
}

func sysMunmap(t *thread, a *sysArgs) int64 {
	mem := t.m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	length, ok := anonRange(mem, a.a[0], a.a[1])
	if !ok || length == 0 {
		return -int64(unix.EINVAL)
	}
	if len(mem.areas) > maxAreas-2 {
		return -int64(unix.ENOMEM)
	}
	mem.remove(a.a[0], a.a[0]+length)
	mem.discard(a.a[0], a.a[0]+length)
	return 0
}

func sysMprotect(t *thread, a *sysArgs) int64 {
	addr, prot := a.a[0], int(a.a[2])
	prot, res := checkProt(prot)
	if res != 0 {
		return res
	}
	mem := t.m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	length, ok := anonRange(mem, addr, a.a[1])
	if !ok {
		return -int64(unix.EINVAL)
	}
	// Every page must be mapped.
	covered := addr
	for _, ar := range mem.areas {
		if ar.end <= covered || ar.start >= addr+length {
			continue
		}
		if ar.start > covered {
			return -int64(unix.ENOMEM)
		}
		covered = ar.end
	}
	if covered < addr+length {
		return -int64(unix.ENOMEM)
	}
	if prot != 0 && mem.committed+length > mem.commitMax {
		t.m.oomSeen.Store(true)
		return -int64(unix.ENOMEM)
	}
	if len(mem.areas) > maxAreas-2 {
		return -int64(unix.ENOMEM)
	}
	// Lowering protection of bound pages is not enforced (bindings never
	// shrink, see memory.go); raising it takes effect at the next fault.
	mem.insert(area{addr, addr + length, prot, areaAnon})
	return 0
}

func sysMadvise(t *thread, a *sysArgs) int64 {
	addr, advice := a.a[0], int(a.a[2])
	mem := t.m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	length, ok := anonRange(mem, addr, a.a[1])
	if !ok {
		return -int64(unix.EINVAL)
	}
	switch advice {
	case unix.MADV_DONTNEED, unix.MADV_FREE:
		mem.discard(addr, addr+length)
	case unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL, unix.MADV_WILLNEED,
		unix.MADV_HUGEPAGE, unix.MADV_NOHUGEPAGE, unix.MADV_COLLAPSE:
		// Hints only.
	default:
		return -int64(unix.EINVAL)
	}
	return 0
}

// sysMincore reports which pages of a mapped range are bound to memory
// (resident, for a guest whose memory is bound on first touch), a chunk
// at a time: copyOut may fault pages in, which takes the memory's lock.
func sysMincore(t *thread, a *sysArgs) int64 {
	addr, length, vec := a.a[0], a.a[1], a.a[2]
	if addr&(pageSize-1) != 0 {
		return -int64(unix.EINVAL)
	}
	if addr >= userTop || length > userTop-addr {
		return -int64(unix.ENOMEM)
	}
	pages := alignUp(length, pageSize) / pageSize
	mem := t.m.mem
	mem.mu.Lock()
	end := addr + pages*pageSize
	for covered := addr; covered < end; {
		i := mem.find(covered)
		if i < 0 {
			mem.mu.Unlock()
			return -int64(unix.ENOMEM) // a hole: Linux's answer too
		}
		covered = mem.areas[i].end
	}
	mem.mu.Unlock()
	out := make([]byte, min(pages, 1<<12))
	for done := uint64(0); done < pages; done += uint64(len(out)) {
		n := min(uint64(len(out)), pages-done)
		mem.mu.Lock()
		for i := range n {
			_, _, ok := mem.translate(addr + (done+i)*pageSize)
			out[i] = 0
			if ok {
				out[i] = 1
			}
		}
		mem.mu.Unlock()
		if err := mem.copyOut(vec+done, out[:n]); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	return 0
}
