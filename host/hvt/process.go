package hvt

import (
	"bytes"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// Calls about the guest process itself that programs and libraries make
// and expect Linux's answers to: thread names, capabilities, resource
// usage.

const (
	prSetName = 15
	prGetName = 16
)

// sysPrctl names threads (Go's runtime and libraries do; the name is the
// guest's, the host thread keeps mote's). Naming memory (PR_SET_VMA) is
// answered EINVAL, as by a Linux built without CONFIG_ANON_VMA_NAME (this
// machine's): Go's runtime then stops asking, where a success would cost
// an exit for every mapping it makes, for a name nobody can read. Other
// options: EINVAL.
func sysPrctl(t *thread, a *sysArgs) int64 {
	switch a.a[0] {
	case prSetName:
		var name [16]byte
		for i := 0; i < 15; i++ {
			if err := t.m.mem.copyIn(a.a[1]+uint64(i), name[i:i+1]); err != nil {
				return -int64(unix.EFAULT)
			}
			if name[i] == 0 {
				break
			}
		}
		t.comm = name
		return 0
	case prGetName:
		if err := t.m.mem.copyOut(a.a[1], t.comm[:bytes.IndexByte(t.comm[:], 0)+1]); err != nil {
			return -int64(unix.EFAULT)
		}
		return 0
	}
	return -int64(unix.EINVAL)
}

// sysCapget answers that the guest holds no capabilities (abi.Capget).
func sysCapget(t *thread, a *sysArgs) int64 {
	var hdr [8]byte
	if err := t.m.mem.copyIn(a.a[0], hdr[:]); err != nil {
		return -int64(unix.EFAULT)
	}
	pid := int32(le.Uint32(hdr[4:]))
	n, fix, e := abi.Capget(le.Uint32(hdr[0:]), pid, a.a[1] == 0, pid == 1)
	if fix {
		le.PutUint32(hdr[0:], unix.LINUX_CAPABILITY_VERSION_3)
		if err := t.m.mem.copyOut(a.a[0], hdr[:4]); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	if e != 0 {
		return -int64(e)
	}
	if n > 0 {
		if err := t.m.mem.copyOut(a.a[1], make([]byte, 12*n)); err != nil {
			return -int64(unix.EFAULT)
		}
	}
	return 0
}

// sysGetrusage answers from the tender, which is the guest's process as
// the host sees it: RUSAGE_SELF is its CPU time (the guest's threads and
// the tender's work for them) and peak resident memory (guest memory is
// mapped in it); RUSAGE_THREAD is the calling vCPU thread's, the call
// being served on it; a guest has no children.
func sysGetrusage(t *thread, a *sysArgs) int64 {
	var ru unix.Rusage
	switch int32(a.a[0]) {
	case unix.RUSAGE_SELF, unix.RUSAGE_THREAD:
		if err := unix.Getrusage(int(int32(a.a[0])), &ru); err != nil {
			return errno(err)
		}
	case unix.RUSAGE_CHILDREN:
	default:
		return -int64(unix.EINVAL)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&ru)), unsafe.Sizeof(ru))
	if err := t.m.mem.copyOut(a.a[1], b); err != nil {
		return -int64(unix.EFAULT)
	}
	return 0
}
