// Package ociruntime runs OCI bundles that hold Mote images as
// unikernels, behind the OCI runtime command line that runc offers and
// containerd's runc shim and podman call (cmd/mote-oci).
//
// A bundle is a Mote image's when its rootfs holds /mote/image.json (see
// host/ociimage) or its spec carries the annotation
// org.moteos.mote.unikernel. Such a bundle is translated, after checking
// everything in it as untrusted input, into a mote run command line
// (Plan); any other bundle is not this package's business (mote-oci hands
// it to runc).
//
// The life cycle is runc's. create starts an init process that joins the
// container's network namespace, sets up the pod's network for the guest,
// reports back, and waits on a FIFO; start opens the FIFO and the init
// process becomes mote run (the same PID, which the shim waits for); kill
// signals it, and mote passes the signal to the guest; delete removes what
// create made. State lives in the runtime's root directory, one directory
// per container, beside runc's.
package ociruntime
