package main

import (
	"fmt"
	"io"

	"github.com/moteos/mote/host/tarimage"
)

const mkimageHelp = `Packs the directories and regular files under DIR into a file-tree image
(a tar archive padded to 512-byte sectors) that a unikernel mounts with
mote run --fs NAME=FILE and reads with mote.FS(NAME). Entries are in lexical
order, so the same tree gives the same image.
`

func runMkimage(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("mkimage", stderr)
	out := fs.String("o", "", "the image to write")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if *out == "" || fs.NArg() != 1 {
		return exitUsage, usagef("want -o FILE and one directory")
	}
	n, err := tarimage.PackFile(fs.Arg(0), *out)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "%s (%d bytes)\n", *out, n)
	return 0, nil
}
