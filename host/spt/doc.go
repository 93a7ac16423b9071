// Package spt runs a unikernel image as an ordinary Linux process confined
// by a seccomp-BPF filter to the Mote ABI — the same static binary the hvt
// tender boots, on the host kernel instead of KVM (Solo5's spt is the
// model).
//
// The confined process is made in two steps. mote starts itself again as
// a small stage-2 process that puts the devices at their descriptor
// numbers, forbids new privileges, installs the filter on its only
// remaining thread that matters, and replaces itself with the image by
// execveat of a close-on-exec descriptor the filter pins by number: the
// filter is in force before the guest's first instruction, and after the
// exec that descriptor is gone, so nothing can be executed again. A system
// call outside the ABI is reported to mote through a seccomp user
// notification — which names it — and then kills the guest (--strict) or
// fails with ENOSYS.
//
// A NIC's host side (TAP or the user network's socket) stays in mote: a
// thread there moves its frames to and from rings in a sealed memory file
// that the guest maps (host/ringdev), as hvt's tender does with rings in
// guest memory.
package spt
