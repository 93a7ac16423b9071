// Package tarimage packs a directory into a file-tree image: a tar archive
// padded to whole 512-byte sectors, which a unikernel reads from a block
// device as an io/fs.FS (guest/tarfs). `mote mkimage` and `mote run --fs`
// use it.
package tarimage
