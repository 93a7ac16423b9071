package ociruntime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bundle makes a bundle whose rootfs holds a Mote image, and returns it
// with a spec to change before NewPlan reads it.
func bundle(t *testing.T) (string, *specs.Spec) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"mote", "www", "proc", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "mote/unikernel"), []byte("\x7fELF"), 0o755)
	os.WriteFile(filepath.Join(root, "mote/image.json"), []byte(`{"version":1,"target":"hvt","memory":"32M"}`), 0o644)
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "pod-a",
		Process:  &specs.Process{Args: []string{"/mote/unikernel", "-addr", ":8080"}, Env: []string{"PATH=/bin", "A=b=c"}, Cwd: "/"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm"},
			{Destination: "/run/x", Type: "tmpfs", Source: "tmpfs"},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}},
	}
	return dir, s
}

func TestPlanOfAMoteImage(t *testing.T) {
	dir, s := bundle(t)
	data := t.TempDir()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolv, []byte("search x\nnameserver 10.96.0.10\nnameserver 1.1.1.1,addr=10.9.9.9/8\n"), 0o644)
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rro"}},
		specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv, Options: []string{"rbind"}})
	limit, quota, period := int64(100<<20+12345), int64(150000), uint64(100000)
	s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}
	p, err := NewPlan(dir, s, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Target != "spt" || p.Memory != 100<<20 || p.CPUs != 2 || p.Hostname != "pod-a" || !p.NewNetNS {
		t.Errorf("plan %+v: want spt (no KVM), 100 MiB, 2 CPUs, pod-a, a new network namespace", p)
	}
	if !slices.Equal(p.DNS, []string{"10.96.0.10"}) {
		t.Errorf("DNS %q", p.DNS)
	}
	want := []Volume{{Host: data, Guest: "/data", ReadOnly: true}, {Host: filepath.Join(dir, "rootfs/www"), Guest: "/www"}}
	if !slices.Equal(p.Volumes, want) {
		t.Errorf("volumes %+v, want %+v", p.Volumes, want)
	}
	if !slices.Contains(p.Ignored, "mount /run/x (tmpfs)") {
		t.Errorf("ignored %q: want the tmpfs mount named", p.Ignored)
	}
	got := strings.Join(p.MoteArgs("tap:mote0,addr=10.0.0.2/24"), " ")
	wantArgs := "run -t=spt -m=100M --cpus=2 -w=/ --hostname=pod-a --env=PATH=/bin --env=A=b=c -v=" + data + ":/data:ro -v=" +
		filepath.Join(dir, "rootfs/www") + ":/www --net=tap:mote0,addr=10.0.0.2/24 " + filepath.Join(dir, "rootfs/mote/unikernel") + " -- -addr :8080"
	if got != wantArgs {
		t.Errorf("mote args\n%s\nwant\n%s", got, wantArgs)
	}

	// With KVM the image's target stands; without a limit its memory.
	s.Linux.Resources = nil
	if p, err := NewPlan(dir, s, true); err != nil || p.Target != "hvt" || p.Memory != 32<<20 {
		t.Errorf("with KVM: %+v, %v: want hvt, the image's 32 MiB", p, err)
	}
}

// Whatever a bundle holds reaches mote as a flag's value or after --,
// never as a flag of its own.
func TestPlanArgumentsAreNotFlags(t *testing.T) {
	dir, s := bundle(t)
	s.Process.Args = []string{"/mote/unikernel", "--strict", "-v=/:/host"}
	s.Process.Env = []string{"--strict"}
	p, err := NewPlan(dir, s, false)
	if err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Fatalf("env %q: %v, want it refused", s.Process.Env, err)
	}
	s.Process.Env = []string{"X=--net=user", "-v=/:/host"}
	if p, err = NewPlan(dir, s, false); err != nil {
		t.Fatal(err)
	}
	a := p.MoteArgs("")
	sep := slices.Index(a, "--")
	if sep < 0 || !slices.Equal(a[sep+1:], []string{"--strict", "-v=/:/host"}) || !slices.Contains(a, "--env=X=--net=user") || !slices.Contains(a, "--env=-v=/:/host") {
		t.Errorf("mote args %q", a)
	}
}

func TestPlanRefusesBadBundles(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		change     func(dir string, s *specs.Spec)
	}{
		{"unikernel through a symlink", "unikernel", func(dir string, s *specs.Spec) {
			u := filepath.Join(dir, "rootfs/mote/unikernel")
			os.Remove(u)
			os.Symlink("/bin/true", u)
		}},
		{"mote directory a symlink", "", func(dir string, s *specs.Spec) {
			m := filepath.Join(dir, "rootfs/mote")
			os.Rename(m, filepath.Join(dir, "elsewhere"))
			os.Symlink(filepath.Join(dir, "elsewhere"), m)
		}},
		{"image.json a symlink", "image.json", func(dir string, s *specs.Spec) {
			c := filepath.Join(dir, "rootfs/mote/image.json")
			os.Remove(c)
			os.Symlink("/etc/passwd", c)
		}},
		{"image.json a FIFO (opening it would hang)", "not a regular file", func(dir string, s *specs.Spec) {
			c := filepath.Join(dir, "rootfs/mote/image.json")
			os.Remove(c)
			syscall.Mkfifo(c, 0o644)
		}},
		{"the unikernel a FIFO", "not a regular file", func(dir string, s *specs.Spec) {
			u := filepath.Join(dir, "rootfs/mote/unikernel")
			os.Remove(u)
			syscall.Mkfifo(u, 0o644)
		}},
		{"bad image.json", "image.json", func(dir string, s *specs.Spec) {
			os.WriteFile(filepath.Join(dir, "rootfs/mote/image.json"), []byte(`{"version":2}`), 0o644)
		}},
		{"another program", "runs /mote/unikernel", func(dir string, s *specs.Spec) { s.Process.Args = []string{"/bin/sh"} }},
		{"annotation naming a host path", "annotation", func(dir string, s *specs.Spec) {
			s.Annotations = map[string]string{"org.moteos.mote.unikernel": "/etc/shadow"}
		}},
		{"bad target annotation", "want hvt or spt", func(dir string, s *specs.Spec) {
			s.Annotations = map[string]string{AnnotationTarget: "hvt --strict"}
		}},
		{"hvt asked without KVM", "/dev/kvm", func(dir string, s *specs.Spec) {
			s.Annotations = map[string]string{AnnotationTarget: "hvt"}
		}},
		{"hostname with a flag in it", "host name", func(dir string, s *specs.Spec) { s.Hostname = "a --strict" }},
		{"memory too small", "at least 16 MiB", func(dir string, s *specs.Spec) {
			l := int64(8 << 20)
			s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &l}}
		}},
		{"NUL in an argument", "NUL", func(dir string, s *specs.Spec) { s.Process.Args = append(s.Process.Args, "a\x00b") }},
		{"arguments too large", "more than", func(dir string, s *specs.Spec) {
			s.Process.Args = append(s.Process.Args, strings.Repeat("x", maxArgBytes))
		}},
		{"mount source relative", "not absolute", func(dir string, s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "../../etc"})
		}},
		{"mount with a colon", "cannot mount", func(dir string, s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data:ro", Type: "bind", Source: dir})
		}},
		{"a single file", "single files", func(dir string, s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/config.yaml", Type: "bind", Source: filepath.Join(dir, "rootfs/mote/image.json")})
		}},
		{"relative cwd", "not absolute", func(dir string, s *specs.Spec) { s.Process.Cwd = "tmp" }},
		{"relative network namespace", "not an absolute path", func(dir string, s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "proc/1/ns/net"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, s := bundle(t)
			tc.change(dir, s)
			_, err := NewPlan(dir, s, false)
			if err == nil || errors.Is(err, ErrNotMote) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPlan: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestPlanOfOtherBundles(t *testing.T) {
	dir, s := bundle(t)
	os.RemoveAll(filepath.Join(dir, "rootfs/mote"))
	s.Process.Args = []string{"/pause"}
	if _, err := NewPlan(dir, s, false); !errors.Is(err, ErrNotMote) {
		t.Errorf("a bundle without a Mote image: %v, want ErrNotMote", err)
	}
}

func TestLoadSpecBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion":"1.0.0","x":"`+strings.Repeat("a", maxSpecBytes)+`"}`), 0o644)
	if _, err := LoadSpec(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a huge config.json: %v", err)
	}
	b, _ := json.Marshal(specs.Spec{Version: "1.0.0"})
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	if _, err := LoadSpec(dir); err != nil {
		t.Error(err)
	}
}

func TestContainerIDs(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	for _, id := range []string{"../x", "..", "a/b", "", strings.Repeat("a", 1025), "a b"} {
		if _, err := r.dir(id); err == nil {
			t.Errorf("container ID %q taken", id)
		}
	}
	if _, err := r.dir("k8s_app-1.2+x"); err != nil {
		t.Error(err)
	}
}

// The life cycle without a shim: create leaves an init process waiting,
// state says so, delete of a container never started ends that process
// and leaves nothing behind. (Runs the test binary as the init process;
// the guest is never started.)
func TestCreateThenDelete(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root (network namespaces)")
	}
	dir, s := bundle(t)
	s.Linux.Namespaces = nil
	p, err := NewPlan(dir, s, false)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{Root: t.TempDir(), Mote: "/bin/false"}
	pidFile := filepath.Join(t.TempDir(), "pid")
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	if err := r.Create("c1", s, p, CreateOptions{Bundle: dir, PidFile: pidFile, Stdio: [3]*os.File{devnull, devnull, devnull}}); err != nil {
		t.Fatal(err)
	}
	c, err := r.Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st != specs.StateCreated {
		t.Errorf("status %s, want created", st)
	}
	if st, err := os.Lstat(c.Tmp); err != nil || !st.IsDir() || c.Tmp != filepath.Join(dir, "rootfs", tmpName) {
		t.Errorf("mote's TMPDIR %q: %v", c.Tmp, err)
	}
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(c.Pid) {
		t.Errorf("pid file %q, state's pid %d", b, c.Pid)
	}
	if err := r.Create("c1", s, p, CreateOptions{Bundle: dir}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second create of c1: %v", err)
	}
	pid := c.Pid
	if err := c.Delete(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		if st, _ := startTime(pid); st == c.StartTime {
			t.Errorf("init process %d still there after delete", pid)
		}
	}
	if r.Owns("c1") {
		t.Error("c1's state is still there")
	}
	if _, err := os.Lstat(filepath.Join(dir, "rootfs", tmpName)); !os.IsNotExist(err) {
		t.Errorf("mote's TMPDIR in the rootfs is still there: %v", err)
	}

	// An image that holds the name (a symlink to / here) is refused.
	os.Symlink("/", filepath.Join(dir, "rootfs", tmpName))
	if err := r.Create("c2", s, p, CreateOptions{Bundle: dir}); err == nil || !strings.Contains(err.Error(), "a name Mote keeps") {
		t.Errorf("create over an image holding /%s: %v", tmpName, err)
	}
	if r.Owns("c2") {
		t.Error("c2's state was left")
	}
}

func TestMain(m *testing.M) {
	// The test binary is also the init process Create starts.
	if len(os.Args) == 3 && os.Args[1] == InitArg {
		Init(os.Args[2])
	}
	os.Exit(m.Run())
}
