package mote

import (
	"fmt"
	"os"
	"sync"

	"github.com/moteos/mote/abi"
)

var (
	manifestOnce sync.Once
	manifest     *abi.Manifest
	manifestErr  error
)

// Manifest returns the devices the program was started with. Without a
// manifest (a plain `go run`) it is the unix target with no devices. A
// malformed manifest is an error here and in every function that needs it.
func Manifest() (*abi.Manifest, error) {
	manifestOnce.Do(func() {
		v, ok := os.LookupEnv(abi.EnvManifest)
		if !ok || v == "" {
			manifest = &abi.Manifest{Version: abi.Version, Target: abi.TargetUnix}
			return
		}
		manifest, manifestErr = abi.Parse([]byte(v))
		if manifestErr != nil {
			manifestErr = fmt.Errorf("mote: %s: %w", abi.EnvManifest, manifestErr)
		}
	})
	return manifest, manifestErr
}

// Target names the target the program runs on: "unix", "hvt" or "spt"
// ("" with a malformed manifest).
func Target() string {
	m, err := Manifest()
	if err != nil {
		return ""
	}
	return m.Target
}

// Unikernel reports whether the program runs on the Mote ABI (hvt, spt).
func Unikernel() (bool, error) {
	m, err := Manifest()
	if err != nil {
		return false, err
	}
	return m.Target != abi.TargetUnix, nil
}
