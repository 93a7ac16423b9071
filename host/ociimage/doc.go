// Package ociimage writes a unikernel as an OCI image: an OCI image
// layout in a tar file, which ctr images import, podman load and skopeo
// copy oci-archive: accept, so that a Mote unikernel travels through
// registries and container tools as any image does.
//
// The image has one layer holding the unikernel at /mote/unikernel. Its
// config says what Mote needs to run it, in labels under org.moteos.mote.
// (target, memory, ports, mounts), with the program's arguments and
// environment in the config's own Cmd and Env; the manifest carries the
// annotation org.moteos.mote.unikernel, by which a runtime knows a Mote
// image (docs/oci.md). The entry point is the unikernel too: a Mote image
// is a static Linux executable, so a plain container runtime runs it as a
// process.
//
// Images are reproducible: no time, owner or order in them depends on the
// build, so the same unikernel and settings give the same digest.
package ociimage
