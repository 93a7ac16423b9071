package abi

import "golang.org/x/sys/unix"

// CloneThread is the clone flags with which the Go runtime makes a thread,
// the only clone the Mote ABI has (CLONE_SETTLS may be added); hvt's
// tender and spt's supervisor both take exactly these.
const CloneThread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM
