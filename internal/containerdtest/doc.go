// Package containerdtest runs a containerd of a test's own, for the
// end-to-end tests of Mote's OCI images and of mote-oci: its root, state
// and socket live in a temporary directory, and it is stopped by its PID
// when the test ends. The host's own containerd, if any, is not touched.
//
// StartCRI adds containerd's CRI plugin, as a Kubernetes node runs it,
// for crictl; PauseImage and Image write the ordinary images such tests
// need beside Mote's (no registry can be reached).
package containerdtest
