package mote

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/moteos/mote/abi"
)

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
		return nil, fmt.Errorf("mote: file tree %s: tar images on block devices are not supported yet", name)
	}
	return nil, fmt.Errorf("mote: no file tree %q (mote run --fs %s=DIR)", name, name)
}
