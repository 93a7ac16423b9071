// Package confine narrows what the hvt tender (mote itself, serving a
// guest) may do once its devices are set up: no_new_privs, and a seccomp
// filter on every thread that kills the process at any system call a
// tender never makes and an attacker who took control of it would want —
// running programs, debugging or reading other processes, mounts and
// namespaces, kernel modules, BPF and perf, keys, io_uring (whose
// operations seccomp cannot see), identity and clock changes — and at
// 32-bit and x32 entry points.
//
// It is a deny-list rather than Solo5's or Firecracker's allowlist: the
// tender serves a guest's file tree and user network from the host, and
// the Go runtime under it makes what calls it will, so an allowlist that
// missed one would kill a healthy instance. Every call it denies is one
// that no path of the tender makes (docs/security.md).
package confine
