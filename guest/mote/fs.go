package mote

import (
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/guest/tarfs"
)

// treeCache is the size of each file tree's cache of device reads.
const treeCache = 8 << 20

var (
	treesMu sync.Mutex
	trees   = map[string]fs.FS{}
)

// treeOnBlock opens the tar image on the tree's block device, once.
func treeOnBlock(t abi.Tree) (fs.FS, error) {
	treesMu.Lock()
	defer treesMu.Unlock()
	if f, ok := trees[t.Name]; ok {
		return f, nil
	}
	dev, err := OpenBlock(t.Block)
	if err != nil {
		return nil, fmt.Errorf("mote: file tree %s: %w", t.Name, err)
	}
	f, err := tarfs.New(tarfs.NewSectors(dev, dev.Size(), dev.SectorSize(), treeCache), dev.Size())
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("mote: file tree %s on block %s: %w", t.Name, t.Block, err)
	}
	trees[t.Name] = f
	return f, nil
}

// FS returns the read-only file tree called name in the manifest
// (mote run --fs NAME=DIR on unix).
func FS(name string) (fs.FS, error) {
	m, err := Manifest()
	if err != nil {
		return nil, err
	}
	for _, t := range m.FS {
		if t.Name != name {
			continue
		}
		if m.Target == abi.TargetUnix {
			st, err := os.Stat(t.Path)
			if err != nil {
				return nil, fmt.Errorf("mote: file tree %s: %w", name, err)
			}
			if !st.IsDir() {
				return nil, fmt.Errorf("mote: file tree %s: %s is not a directory", name, t.Path)
			}
			return os.DirFS(t.Path), nil
		}
		return treeOnBlock(t)
	}
	return nil, fmt.Errorf("mote: no file tree %q (mote run --fs %s=DIR)", name, name)
}
