// Package tap is the `--net tap:IFNAME` backend: it attaches to an existing
// TAP interface, whose descriptor carries whole Ethernet frames and becomes
// the guest's NIC as it is. Creating the interface, addressing it and
// routing or bridging it are the host administrator's business (ip tuntap,
// a bridge, a network namespace), as with QEMU and Firecracker.
package tap
