// Package hvt is Mote's KVM tender: it runs an unmodified static
// linux/amd64 Go program as a unikernel in a KVM guest and serves the Mote
// ABI (docs/abi.md) — a small subset of the Linux system-call interface —
// from the host.
package hvt
