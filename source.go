// Package mote holds what the mote command carries of Mote's own source:
// the guest packages that host/inject adds to a program that does not
// depend on Mote, with the go.mod and go.sum that pin their
// dependencies. The rest of Mote is under host/ (the host side), guest/
// (the library OS) and cmd/ (the commands); docs/architecture.md is the
// map.
package mote

import "embed"

// GuestSource is Mote's module as a program built for hvt or spt needs
// it: go.mod, go.sum, abi/ and guest/.
//
//go:embed go.mod go.sum abi guest
var GuestSource embed.FS
