package hvt

import "github.com/moteos/mote/host/hvt/shim"

// ShimEntry is the guest address of the shim's entry for system call nr,
// for guests that call it as the Go runtime's rewritten sites do.
func ShimEntry(nr uint64) uint64 {
	off, ok := shim.Entry(nr)
	if !ok {
		panic("no shim entry")
	}
	return shimBase + off
}
