// Package tarfs is a read-only file tree read from a tar archive through
// an io.ReaderAt — in a unikernel, a block device holding an image made by
// `mote mkimage` — exposed as io/fs.FS, so http.FileServer(http.FS(...))
// serves it. The archive is indexed once, when opened; file data is read
// in place, through a cache of recently used chunks, since every device
// read is a VM exit. MirageOS serves archive mirrors the same way.
package tarfs
