package abi

import "golang.org/x/sys/unix"

// A guest holds no capabilities, on hvt and spt alike (spt's stage 2
// drops them all before the image runs), and capget says so as Linux does
// for such a process. Capget is the one rule both targets answer by.

// Capget checks a capget call as Linux does, given its header's version
// and pid, whether the data pointer is NULL, and whether pid names the
// guest itself. It returns how many 12-byte capability structures to
// write (all zeros) and the errno; fixVersion means the header's version
// must be rewritten to unix.LINUX_CAPABILITY_VERSION_3 first (an unknown
// version, which a library uses to ask the preferred one).
func Capget(version uint32, pid int32, noData, self bool) (structs int, fixVersion bool, errno unix.Errno) {
	switch version {
	case unix.LINUX_CAPABILITY_VERSION_1:
		structs = 1
	case unix.LINUX_CAPABILITY_VERSION_2, unix.LINUX_CAPABILITY_VERSION_3:
		structs = 2
	default:
		if noData {
			return 0, true, 0
		}
		return 0, true, unix.EINVAL
	}
	switch {
	case noData:
		return 0, false, 0
	case pid < 0:
		return 0, false, unix.EINVAL
	case pid != 0 && !self:
		return 0, false, unix.ESRCH
	}
	return structs, false, 0
}
