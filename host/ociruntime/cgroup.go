package ociruntime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// joinCgroup makes the cgroup at cgPath (the spec's linux.cgroupsPath, as
// runc's cgroupfs driver takes it) in every mounted hierarchy and moves
// pid into it, as runc does: the shim's and the kubelet's figures for the
// container are then the unikernel's (mote and, on spt, the guest
// process), and the pod's own cgroup bounds them. It sets no limit of its
// own: the guest's memory is mote's -m, and a limit of the same size on
// the cgroup would count the tender against the guest. It returns the
// directories it made, for delete to remove.
func joinCgroup(cgPath string, pid int) ([]string, error) {
	if !path.IsAbs(cgPath) {
		cgPath = "/" + cgPath
	}
	cgPath = path.Clean(cgPath)
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var made []string
	for _, m := range mounts {
		dir := filepath.Join(m.dir, cgPath)
		if !strings.HasPrefix(dir, m.dir+"/") {
			return made, fmt.Errorf("cgroup path %q leaves %s", cgPath, m.dir)
		}
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return made, err
			}
			made = append(made, dir)
		}
		if m.cpuset {
			// A new cpuset cgroup has no CPUs or memory nodes, and takes
			// no process until it is given its parent's.
			if err := inheritCpuset(m.dir, dir); err != nil {
				return made, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return made, fmt.Errorf("joining cgroup %s: %w", dir, err)
		}
	}
	return made, nil
}

type cgroupMount struct {
	dir    string
	cpuset bool
}

// cgroupMounts are the cgroup hierarchies mounted here, whole (mounted
// from their root): version 1's, one per controller set, and version 2's.
func cgroupMounts() ([]cgroupMount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ms []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") || f[3] != "/" {
			continue
		}
		cpuset := false
		for _, o := range strings.Split(g[2], ",") {
			cpuset = cpuset || o == "cpuset"
		}
		ms = append(ms, cgroupMount{dir: f[4], cpuset: cpuset && g[0] == "cgroup"})
	}
	return ms, nil
}

// inheritCpuset gives dir, and every cgroup between it and the
// hierarchy's root, its parent's CPUs and memory nodes where it has none.
func inheritCpuset(root, dir string) error {
	if dir == root {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := inheritCpuset(root, parent); err != nil {
		return err
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(cur)) > 0 {
			continue
		}
		v, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return fmt.Errorf("%s/%s: %w", dir, f, err)
		}
	}
	return nil
}

// leaveCgroups removes the cgroups joinCgroup made, deepest first; a
// cgroup still holding a process (or one made by someone else meanwhile)
// stays.
func leaveCgroups(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}
