// Package shim is the guest-side half of Mote's system-call fast path: a
// page of machine code the tender maps into every guest and calls from the
// Go runtime's own system-call sites, which the tender rewrites in memory
// at load time (the binary on disk is untouched). The shim answers the
// calls that only touch the guest's own state — signal actions, masks,
// alternate stacks, thread and process ids, the CPU mask — from data the
// tender and the shim share in guest memory, so they cost no VM exit. It
// is the same idea as gVisor's systrap rewriting `mov $nr, %eax; syscall`
// into calls; a call the shim cannot finish goes to the tender through the
// doorbell, exactly as the original system call would have. The runtime's
// other system calls are rewritten too, into stubs that go straight to the
// doorbell: from ring 3 that exit costs less than one through SYSCALL,
// which enters ring 0.
package shim
