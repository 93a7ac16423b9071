package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Files of an instance's directory.
const (
	specFile  = "spec.json"
	stateFile = "state.json"
	lockFile  = "lock"
	stopFile  = "stop" // mote stop asked for the end: no restart
	LogFile   = "console.log"
	RunnerLog = "runner.log" // the runner's own complaints
)

// ErrExists is returned by Create for a name in use.
var ErrExists = errors.New("instance exists")

// ErrNotFound is returned for a name with no instance.
var ErrNotFound = errors.New("no such instance")

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Spec is what an instance was started with.
type Spec struct {
	Name      string    `json:"name"`
	Image     string    `json:"image"`      // as the user named it (a file or a package)
	ImagePath string    `json:"image_path"` // the file run (a package's build is kept in the directory)
	Target    string    `json:"target"`     // hvt, spt or unix
	Flags     []string  `json:"flags"`      // mote run's flags
	GuestArgs []string  `json:"guest_args,omitempty"`
	Ports     []string  `json:"ports,omitempty"`
	Memory    string    `json:"memory"`
	Restart   Restart   `json:"restart"`
	Created   time.Time `json:"created"`
}

// Restart is a restart policy: never, or after a failing exit up to Max
// times (0: without limit).
type Restart struct {
	OnFailure bool `json:"on_failure,omitempty"`
	Max       int  `json:"max,omitempty"`
}

// State is what the runner records as the instance goes.
type State struct {
	PID      int       `json:"pid"` // the runner's
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	Status   *int      `json:"status,omitempty"` // the last exit status
	Restarts int       `json:"restarts,omitempty"`
	Running  bool      `json:"running"`
}

// Instance is an instance as found on disk.
type Instance struct {
	Dir   string
	Spec  Spec
	State State
	// Live is whether its runner holds the lock: the only test of
	// running that survives a crash of anything.
	Live bool
}

// Status is the one-word state ps shows.
func (in *Instance) Status() string {
	switch {
	case in.Live:
		return "running"
	case in.State.PID == 0:
		return "created"
	case in.State.Running:
		return "dead" // its runner died without a word (kill -9)
	}
	return "exited"
}

// DefaultRoot is where instances live: MOTE_STATE_DIR if set; /run/mote
// for root; else $XDG_RUNTIME_DIR/mote; else mote-UID in the temporary
// directory. Per user, so that users do not see each other's.
func DefaultRoot() string {
	if d := os.Getenv("MOTE_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/mote"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "mote")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("mote-%d", os.Geteuid()))
}

func instancesDir(root string) string { return filepath.Join(root, "instances") }

// CheckName says whether name can name an instance.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("instance name %q: want 1 to 63 letters, digits, '_', '.' or '-', not starting with a sign", name)
	}
	return nil
}

// Create makes the directory of a new instance and writes its spec; a
// name in use is ErrExists, even between two racing creators (the
// directory's creation is the claim).
func Create(root string, spec Spec) (*Instance, error) {
	if err := CheckName(spec.Name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(instancesDir(root), 0o700); err != nil {
		return nil, fmt.Errorf("instance state: %w", err)
	}
	dir := filepath.Join(instancesDir(root), spec.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExists, spec.Name)
		}
		return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
	}
	in := &Instance{Dir: dir, Spec: spec}
	if err := writeJSON(filepath.Join(dir, specFile), spec); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return in, nil
}

// Open reads the instance named name.
func Open(root, name string) (*Instance, error) {
	if CheckName(name) != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return load(filepath.Join(instancesDir(root), name))
}

// OpenDir reads the instance in dir.
func OpenDir(dir string) (*Instance, error) { return load(dir) }

func load(dir string) (*Instance, error) {
	in := &Instance{Dir: dir}
	if err := readJSON(filepath.Join(dir, specFile), &in.Spec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, filepath.Base(dir))
		}
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, stateFile), &in.State); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	in.Live = locked(filepath.Join(dir, lockFile))
	return in, nil
}

// List reads every instance, by name.
func List(root string) ([]*Instance, error) {
	ents, err := os.ReadDir(instancesDir(root))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Instance
	for _, e := range ents {
		in, err := load(filepath.Join(instancesDir(root), e.Name()))
		if err != nil {
			continue // half made by a Create that is still writing, or gone meanwhile
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Remove deletes a stopped instance's directory.
func (in *Instance) Remove() error {
	if locked(filepath.Join(in.Dir, lockFile)) {
		return fmt.Errorf("instance %s is running: stop it first (or rm -f)", in.Spec.Name)
	}
	return os.RemoveAll(in.Dir)
}

// SetImagePath records the file the runner runs.
func (in *Instance) SetImagePath(path string) error {
	in.Spec.ImagePath = path
	return writeJSON(filepath.Join(in.Dir, specFile), in.Spec)
}

// MarkKilled records the end of an instance whose runner was killed (by
// mote stop after its grace), which could not record it itself.
func (in *Instance) MarkKilled(status int) error {
	in.State.Status, in.State.Running, in.State.Ended = &status, false, time.Now()
	return writeJSON(filepath.Join(in.Dir, stateFile), in.State)
}

// AskStop records that the end is wanted, so that the runner does not
// restart the guest when it exits.
func (in *Instance) AskStop() error {
	return os.WriteFile(filepath.Join(in.Dir, stopFile), nil, 0o600)
}

// locked says whether some process holds the lock file.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return err == unix.EWOULDBLOCK
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	// Written whole and renamed, so that a reader never sees half.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
