// Package build turns a Go main package into an artifact for a Mote
// target by running the Go toolchain: a host executable for unix, and for
// hvt and spt a static linux/amd64 binary (CGO_ENABLED=0, GOAMD64=v1) —
// the image itself, since the Mote ABI is a subset of Linux's and devices
// are described at run time, not baked in.
package build
