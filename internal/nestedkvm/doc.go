// Package nestedkvm runs the KVM tests where the host has no /dev/kvm: in
// a Linux virtual machine that QEMU emulates (TCG, -cpu max), whose kernel
// provides KVM itself on QEMU's emulated AMD SVM. The tender then drives a
// real KVM, with real hardware-virtualization semantics (VM exits, event
// injection, XSAVE state), on a CPU that offers AVX and AVX2 whatever the
// host offers. It is slow (a guest runs tens of times slower than on
// hardware) and it is not kvm-pvm nor VMX: a test that passes here has run
// on one more kind of KVM, not on every kind.
//
// The machine is bench/microvm's: Debian's kernel, an initramfs whose
// /init (bench/guests/microinit) loads kvm_amd and runs this package's
// runner as /app. The runner reads /run.json (the command and its
// environment: the kernel's command line mangles arguments such as
// -test.run), runs the command with the files the caller packed, and
// prints its exit status on the console, which QEMU's standard output
// carries back.
//
// Its test runs only with MOTE_NESTEDKVM=1: in about one run in four here
// the emulated machine froze whole (QEMU 7.2's TCG with nested SVM under
// load), and a test that fails for its emulator's sake cannot gate CI.
package nestedkvm
