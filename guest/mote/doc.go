// Package mote is what a Mote application imports to get what an operating
// system would give it: the network as standard net.Listener, net.Conn and
// net.PacketConn values, block devices, read-only file trees, console
// logging, and its device configuration. The functions have the same
// signatures on every target; which implementation serves them is decided
// at run time from the manifest the tender passes (package abi):
//
//   - unix (or no manifest, as under `go run`): host sockets, host files
//     and directories named on the mote run command line;
//   - hvt and spt: gVisor's netstack inside the unikernel over the NIC
//     descriptors, and the block-device descriptors.
//
// On hvt and spt the package also points net.DefaultResolver and
// http.DefaultTransport at the in-guest stack, so code that uses them
// directly (http.Get, net.LookupHost with the Go resolver) works too.
//
// A unikernel has no files, so what Go would read from the host's files
// comes with the image: importing this package links the Mozilla CA roots
// (golang.org/x/crypto/x509roots/fallback/bundle, installed as crypto/x509's
// fallback roots at the program's first outbound connection) and the time
// zone database (time/tzdata). TLS clients, which verify after they dial,
// see them; a pool taken with x509.SystemCertPool before the first
// connection is empty.
package mote
