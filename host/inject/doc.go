// Package inject makes an unmodified Go program a Mote unikernel at build
// time, without touching its files or its go.mod: it gives the go command
// an overlay (go build -overlay) that
//
//   - adds to the standard library's net package a hook where net creates
//     an internet socket (net_mote.go, and a few one-line edits to net's
//     own files, made from the toolchain's sources at build time), and
//   - adds to the program's main package a file importing guest/stdnet,
//     which sets that hook to the guest's own TCP/IP stack.
//
// The edits are checked against the toolchain's sources: a Go release
// whose net package no longer has what an edit expects is refused with
// an error that names the file and the edit, never built half-patched.
package inject
