// Package ringdev moves a NIC's frames between the rings a guest shares
// with its host (abi/ring.go) and the host side of the NIC, a TAP device
// or a SOCK_SEQPACKET socket, on one host thread. The hvt tender maps the
// rings into guest memory; spt shares them as a memory file the guest
// maps. Either way the guest makes no system call per frame: it waits on
// an eventfd only when it has nothing to do, and wakes the device only
// when the device sleeps.
package ringdev
