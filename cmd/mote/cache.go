package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moteos/mote/host/imagecache"
)

const cacheHelp = `List or remove the shared-memory copies of images that hvt boots from
(MOTE_IMAGE_CACHE, default /dev/shm/mote-UID; see mote help run).

  mote cache ls      one line per copy: its size and when it was last used
  mote cache prune   remove every copy (running instances keep theirs)
`

func runCache(args []string, stdout, stderr io.Writer) (int, error) {
	dir := imageCacheDir(runOptions{}) // as mote run reads MOTE_IMAGE_CACHE
	if dir == "" {                     // off: copies made before may still be there
		dir = imagecache.DefaultDir()
	}
	c := imagecache.Cache{Dir: dir}
	if len(args) != 1 {
		return exitUsage, usagef("want ls or prune")
	}
	switch args[0] {
	case "ls":
		paths, err := c.Copies()
		if os.IsNotExist(err) {
			return 0, nil
		}
		if err != nil {
			return exitError, err
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				continue
			}
			fmt.Fprintf(stdout, "%s\t%.1f MiB\tlast used %s\n", filepath.Base(p), float64(st.Size())/(1<<20), st.ModTime().Format("2006-01-02 15:04:05"))
		}
		return 0, nil
	case "prune":
		if err := c.Prune(); err != nil {
			return exitError, err
		}
		return 0, nil
	}
	return exitUsage, usagef("cache %s: want ls or prune", args[0])
}
