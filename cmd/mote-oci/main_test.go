package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moteos/mote/internal/containerdtest"
)

// bin holds mote and mote-oci, built once for the tests: mote-oci finds
// mote beside itself, as go install puts them.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mote-oci-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	out, err := exec.Command("go", "build", "-o", dir+"/", "../mote", ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building mote and mote-oci: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	status := m.Run()
	os.RemoveAll(dir)
	os.Exit(status)
}

// images are OCI images the tests build once: name → tar file.
var images sync.Map

// image builds a Mote OCI image of a package (mote build --oci, run in
// dir) under the tag mote-test/NAME:1, and returns its tar.
func image(t testing.TB, name, dir, pkg string, args ...string) string {
	t.Helper()
	if f, ok := images.Load(name); ok {
		return f.(string)
	}
	out := filepath.Join(bin, name+".tar")
	cmd := exec.Command(filepath.Join(bin, "mote"), append([]string{"build", "-t", "hvt", "--oci", out, "--tag", "mote-test/" + name + ":1", pkg, "--"}, args...)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mote build --oci %s: %v\n%s", pkg, err, b)
	}
	images.Store(name, out)
	return out
}

// unmodified is cmd/mote's unmodified program (standard library only, no
// Mote in its go.mod) as an image.
func unmodified(t *testing.T) string {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS("../mote/testdata/unmodified")); err != nil {
		t.Fatal(err)
	}
	return image(t, "unmodified", src, ".")
}

// runtime is the ctr run flags that choose containerd's runc shim with
// mote-oci as its runc.
func runtime() []string {
	return []string{"--runtime", "io.containerd.runc.v2", "--runc-binary", filepath.Join(bin, "mote-oci")}
}

// ctrRun runs ctr run to its end and returns its output and exit status.
func ctrRun(t *testing.T, cd *containerdtest.Containerd, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("ctr", append([]string{"--address", cd.Sock, "run", "--rm"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// A Mote image runs under containerd as a unikernel, its output and exit
// status coming back through the shim, and leaves no state behind.
func TestMoteImageUnderContainerd(t *testing.T) {
	cd := containerdtest.Start(t)
	cd.MustCtr("images", "import", image(t, "hello", "../..", "./examples/hello", "-exit", "3"))
	out, status := ctrRun(t, cd, append(runtime(), "docker.io/mote-test/hello:1", "hello1")...)
	if status != 3 || !strings.Contains(out, "hello from mote (target") {
		t.Fatalf("ctr run: status %d, want 3 and a greeting:\n%s\ncontainerd:\n%s", status, out, cd.Log())
	}
	if kvmUsable() != strings.Contains(out, "target hvt") {
		t.Errorf("KVM usable %v, but the guest says %q", kvmUsable(), out)
	}
	if !kvmUsable() {
		t.Log("SKIPPED LOUDLY: no usable /dev/kvm: the image ran on spt, not hvt")
	}
	// The shim's runc root for the namespace: nothing of hello1 in it.
	if _, err := os.Stat("/run/containerd/runc/default/hello1"); !os.IsNotExist(err) {
		t.Errorf("state of hello1 left behind: %v", err)
	}
	if out := cd.MustCtr("containers", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left: %q", out)
	}
}

// A container that is not a Mote image's goes to runc, unchanged.
func TestOtherContainersGoToRunc(t *testing.T) {
	cd := containerdtest.Start(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("SKIPPED LOUDLY: no runc (scripts/install-deps installs it)")
	}
	rootfs := t.TempDir()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module plain\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport (\"fmt\"; \"os\")\n\nfunc main() { fmt.Println(\"a plain process\", os.Args[1:], os.Getpid()); os.Exit(4) }\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "plain"), ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	out, status := ctrRun(t, cd, append(runtime(), "--rootfs", rootfs, "plain1", "/plain", "x")...)
	// PID 1: runc made it a container of its own.
	if status != 4 || !strings.Contains(out, "a plain process [x] 1") {
		t.Fatalf("ctr run: status %d, want 4 and the program's line:\n%s", status, out)
	}
}

// Files: a read-only and a writable volume, as bind mounts in the spec.
func TestVolumes(t *testing.T) {
	cd := containerdtest.Start(t)
	cd.MustCtr("images", "import", unmodified(t))
	ro, rw := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "config.yaml"), []byte("port: 8080\n"), 0o644)
	args := append(runtime(),
		"--mount", "type=bind,src="+ro+",dst=/config,options=rbind:ro",
		"--mount", "type=bind,src="+rw+",dst=/state,options=rbind:rw",
		"docker.io/mote-test/unmodified:1", "files1", "/mote/unikernel", "-files", "/config,/state")
	out, status := ctrRun(t, cd, args...)
	for _, want := range []string{`files: config "port: 8080\n"`, "files: write to read-only open /config/new: read-only file system", `files: temp "written in the unikernel" <nil>`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if status != 0 {
		t.Errorf("status %d", status)
	}
	if m, _ := filepath.Glob(filepath.Join(rw, "out-*.txt")); len(m) != 1 {
		t.Errorf("the writable volume holds %q, want the guest's file", m)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); !os.IsNotExist(err) {
		t.Errorf("the read-only volume was written: %v", err)
	}
}

// cni puts a new network namespace on a bridge with CNI's own bridge and
// host-local plugins, as containerd's CRI does for a pod, and returns the
// namespace's path and the pod's address. The test removes both.
func cni(t *testing.T, bridge, name, subnet string) (string, string) {
	t.Helper()
	plugins := "/usr/lib/cni"
	if _, err := os.Stat(filepath.Join(plugins, "bridge")); err != nil {
		t.Skip("SKIPPED LOUDLY: no CNI plugins in /usr/lib/cni (scripts/install-deps installs containernetworking-plugins)")
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	ns := "/var/run/netns/" + name
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"mote-test","type":"bridge","bridge":%q,"isGateway":true,
		"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}}`, bridge, subnet, t.TempDir())
	call := func(command string) ([]byte, error) {
		c := exec.Command(filepath.Join(plugins, "bridge"))
		c.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + name, "CNI_NETNS=" + ns, "CNI_IFNAME=eth0", "CNI_PATH=" + plugins, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		c.Stdin = strings.NewReader(conf)
		return c.CombinedOutput()
	}
	t.Cleanup(func() {
		call("DEL")
		exec.Command("ip", "netns", "del", name).Run()
		exec.Command("ip", "link", "del", bridge).Run()
	})
	out, err := call("ADD")
	if err != nil {
		t.Fatalf("CNI bridge ADD: %v\n%s", err, out)
	}
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) == 0 {
		t.Fatalf("CNI bridge ADD said %s (%v)", out, err)
	}
	ip, _, _ := strings.Cut(res.IPs[0].Address, "/")
	return ns, ip
}

// Pods: two unikernels in pod namespaces set up by CNI, each taking its
// pod's address; the host reaches both, one reaches the other, a memory
// limit becomes the guest's memory, SIGTERM ends a guest cleanly, and
// delete leaves the pod's namespace as CNI made it.
func TestPodNetwork(t *testing.T) {
	cd := containerdtest.Start(t)
	cd.MustCtr("images", "import", unmodified(t))
	bridge := fmt.Sprintf("motebr%d", os.Getpid()%100000)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%50, os.Getpid()%250)
	nsA, ipA := cni(t, bridge, fmt.Sprintf("mote-test-a-%d", os.Getpid()), subnet)
	nsB, ipB := cni(t, bridge, fmt.Sprintf("mote-test-b-%d", os.Getpid()), subnet)

	for _, p := range []struct{ id, ns, mem string }{{"poda", nsA, "50000000"}, {"podb", nsB, ""}} {
		args := []string{"run", "-d"}
		if p.mem != "" {
			args = append(args, "--memory-limit", p.mem)
		}
		args = append(append(args, runtime()...), "--with-ns", "network:"+p.ns, "docker.io/mote-test/unmodified:1", p.id)
		cd.MustCtr(args...)
		id := p.id
		t.Cleanup(func() {
			cd.Ctr("task", "kill", "-s", "SIGKILL", id)
			cd.Ctr("task", "rm", "-f", id)
			cd.Ctr("containers", "rm", id)
		})
	}
	if got := getSoon(t, "http://"+ipA+":8080/x"); !strings.HasPrefix(got, "hello /x from ") {
		t.Errorf("pod A answered %q", got)
	}
	if got := getSoon(t, "http://"+ipB+":8080/y"); !strings.HasPrefix(got, "hello /y from ") {
		t.Errorf("pod B answered %q", got)
	}
	// A to B, pod to pod: /dial sends "hello" to B's HTTP server, which
	// answers it with an HTTP error: either way, a reply from B.
	if got := getSoon(t, "http://"+ipA+":8080/dial?addr="+ipB+":8080"); !strings.Contains(got, "HTTP/1.1 400 Bad Request") {
		t.Errorf("pod A dialling pod B got %q", got)
	}

	// The memory limit (50,000,000 bytes) is the guest's memory, in MiB.
	pidA := taskPid(t, cd, "poda")
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pidA) + "/cmdline")
	if !strings.Contains(string(cmdline), "-m=47M\x00") {
		t.Errorf("pod A's mote: %q, want -m=47M", strings.ReplaceAll(string(cmdline), "\x00", " "))
	}

	// A second Mote container in pod A's network is refused, clearly: the
	// pod's traffic is the first one's.
	args := append(append([]string{"run", "-d"}, runtime()...), "--with-ns", "network:"+nsA, "docker.io/mote-test/unmodified:1", "podc")
	if out, err := cd.Ctr(args...); err == nil || !strings.Contains(out, "a pod holds one Mote container") {
		t.Errorf("a second Mote container in pod A: %v\n%s", err, out)
	}
	cd.Ctr("containers", "rm", "podc")

	// mote runs in the container's cgroup (ctr's /NAMESPACE/ID), as runc
	// would put the container's process: the shim's figures are its.
	if cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pidA) + "/cgroup"); !strings.Contains(string(cg), ":/default/poda\n") {
		t.Errorf("pod A's mote is in the cgroups\n%s\nwant /default/poda", cg)
	}

	// Nothing can be executed in a unikernel: exec is refused, clearly.
	if out, err := cd.Ctr("task", "exec", "--exec-id", "sh1", "podb", "/bin/sh"); err == nil || !strings.Contains(out, "nothing can be executed in it") {
		t.Errorf("ctr task exec: %v, want it refused:\n%s", err, out)
	}

	// SIGTERM: the guest's http server stops, and the task ends soon.
	cd.MustCtr("task", "kill", "poda")
	waitStopped(t, cd, "poda")
	if out := cd.MustCtr("task", "ls"); !strings.Contains(out, "podb") {
		t.Errorf("pod B gone too: %s", out)
	}
	cd.MustCtr("task", "rm", "poda")
	cd.MustCtr("containers", "rm", "poda")
	if _, err := os.Stat("/proc/" + strconv.Itoa(pidA)); err == nil {
		t.Errorf("pod A's mote (PID %d) still runs", pidA)
	}
	// Pod A's namespace is as CNI left it: no TAP, no redirect.
	name := filepath.Base(nsA)
	if out, _ := exec.Command("ip", "-n", name, "link").CombinedOutput(); strings.Contains(string(out), "mote0") {
		t.Errorf("pod A's namespace still has the TAP:\n%s", out)
	}
	if out, _ := exec.Command("tc", "-n", name, "qdisc", "show", "dev", "eth0").CombinedOutput(); strings.Contains(string(out), "ingress") {
		t.Errorf("pod A's eth0 still has the ingress qdisc:\n%s", out)
	}
	if _, err := os.Stat("/run/containerd/runc/default/poda"); !os.IsNotExist(err) {
		t.Errorf("state of poda left behind: %v", err)
	}
}

func taskPid(t *testing.T, cd *containerdtest.Containerd, id string) int {
	t.Helper()
	for _, l := range strings.Split(cd.MustCtr("task", "ls"), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid
		}
	}
	t.Fatalf("no task %s", id)
	return 0
}

func waitStopped(t *testing.T, cd *containerdtest.Containerd, id string) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(cd.MustCtr("task", "ls"), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id && f[2] == "STOPPED" {
				return
			}
		}
	}
	t.Fatalf("task %s did not stop in 15 s after SIGTERM", id)
}

// Kubernetes' way: containerd's CRI with a runtime handler "mote" whose
// runc shim runs mote-oci (what a RuntimeClass names), driven by crictl
// as the kubelet drives it. Two pods, each a pause container (runc) and a
// unikernel: the host reaches each at its pod address, one pod reaches
// the other, crictl logs shows the guest's console, crictl stop ends it
// within its grace period, and after rm and rmp nothing is left: no
// process, network namespace, TAP or state.
func TestKubernetesPods(t *testing.T) {
	bridge := fmt.Sprintf("motecri%d", os.Getpid()%10000)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 150+os.Getpid()%50, os.Getpid()%250)
	cd := containerdtest.StartCRI(t, containerdtest.CRI{Handlers: map[string]string{"mote": filepath.Join(bin, "mote-oci")}, Bridge: bridge, Subnet: subnet})
	cd.MustCtr("--namespace", "k8s.io", "images", "import", unmodified(t))
	cd.MustCtr("--namespace", "k8s.io", "images", "import", image(t, "httpd", "../..", "./examples/httpd"))
	dir := t.TempDir()
	netnsBefore, _ := exec.Command("ip", "netns", "list").Output()

	type pod struct{ id, ctr, ip string }
	start := func(name, img string) pod {
		t.Helper()
		pj := filepath.Join(dir, name+"-pod.json")
		os.WriteFile(pj, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"default","uid":%q},"log_directory":%q,"linux":{}}`,
			name, name+"-uid", filepath.Join(dir, name)), 0o644)
		cj := filepath.Join(dir, name+"-ctr.json")
		os.WriteFile(cj, fmt.Appendf(nil, `{"metadata":{"name":"app"},"image":{"image":%q},"log_path":"app.log",
			"linux":{"resources":{"memory_limit_in_bytes":67108864}}}`, img), 0o644)
		var p pod
		p.id = cd.MustCrictl("runp", "--runtime", "mote", pj)
		t.Cleanup(func() { cd.Crictl("stopp", p.id); cd.Crictl("rmp", "-f", p.id) })
		p.ctr = cd.MustCrictl("create", p.id, cj, pj)
		cd.MustCrictl("start", p.ctr)
		var st struct {
			Status struct {
				Network struct{ IP string }
			}
		}
		if err := json.Unmarshal([]byte(cd.MustCrictl("inspectp", p.id)), &st); err != nil || st.Status.Network.IP == "" {
			t.Fatalf("crictl inspectp %s: no pod IP (%v)", p.id, err)
		}
		p.ip = st.Status.Network.IP
		return p
	}
	a := start("unmod", "docker.io/mote-test/unmodified:1")
	b := start("httpd", "docker.io/mote-test/httpd:1")

	if got := getSoon(t, "http://"+a.ip+":8080/k8s"); !strings.HasPrefix(got, "hello /k8s from ") {
		t.Errorf("pod A answered %q", got)
	}
	if got := getSoon(t, "http://"+b.ip+":8080/api/info"); !strings.Contains(got, `"service":"httpd"`) {
		t.Errorf("pod B answered %q", got)
	}
	if got := getSoon(t, "http://"+a.ip+":8080/dial?addr="+b.ip+":8080"); !strings.Contains(got, "HTTP/1.1 400 Bad Request") {
		t.Errorf("pod A dialling pod B got %q", got)
	}
	// crictl logs writes the guest's stderr to its own.
	out, _ := exec.Command("crictl", "--runtime-endpoint", "unix://"+cd.Sock, "logs", b.ctr).CombinedOutput()
	if !strings.Contains(string(out), "msg=serving") {
		t.Errorf("crictl logs %s: %q, want the guest's serving line", b.ctr, out)
	}

	// The kubelet's figures (CRI container stats, from the container's
	// cgroup) are the unikernel's.
	var stats struct {
		Stats []struct {
			Memory struct {
				WorkingSetBytes struct {
					Value uint64 `json:",string"`
				}
			}
		}
	}
	json.Unmarshal([]byte(cd.MustCrictl("stats", "-o", "json", b.ctr)), &stats)
	if len(stats.Stats) != 1 || stats.Stats[0].Memory.WorkingSetBytes.Value < 1<<20 {
		t.Errorf("crictl stats %s: %+v, want the unikernel's memory", b.ctr, stats)
	}

	var pids []int
	for _, p := range []pod{a, b} {
		var info struct{ Info struct{ Pid int } }
		json.Unmarshal([]byte(cd.MustCrictl("inspect", p.ctr)), &info)
		pids = append(pids, info.Info.Pid)
		stopped := time.Now()
		cd.MustCrictl("stop", "--timeout", "10", p.ctr)
		if d := time.Since(stopped); d > 5*time.Second {
			t.Errorf("crictl stop took %v: the guest did not end on SIGTERM", d)
		}
		cd.MustCrictl("rm", p.ctr)
		cd.MustCrictl("stopp", p.id)
		cd.MustCrictl("rmp", p.id)
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); pid == 0 || err == nil {
			t.Errorf("the guest's mote (PID %d) is still there", pid)
		}
	}
	if after, _ := exec.Command("ip", "netns", "list").Output(); string(after) != string(netnsBefore) {
		t.Errorf("network namespaces before:\n%s\nafter:\n%s", netnsBefore, after)
	}
	for _, id := range []string{a.id, a.ctr, b.id, b.ctr} {
		if _, err := os.Stat("/run/containerd/runc/k8s.io/" + id); !os.IsNotExist(err) {
			t.Errorf("runtime state of %s left: %v", id, err)
		}
	}
}

// A bundle that fails its checks is refused at create, before any
// process starts, with the reason as the last "error" of a JSON log:
// what containerd's shim reports to the user.
func TestCreateRefusalIsLogged(t *testing.T) {
	b := t.TempDir()
	os.MkdirAll(filepath.Join(b, "rootfs/mote"), 0o755)
	os.WriteFile(filepath.Join(b, "rootfs/mote/image.json"), []byte(`{"version":1,"target":"hvt"}`), 0o644)
	os.Symlink("/etc/shadow", filepath.Join(b, "rootfs/mote/unikernel"))
	os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["/mote/unikernel"],"cwd":"/"}}`), 0o644)
	root, log := t.TempDir(), filepath.Join(t.TempDir(), "log.json")
	cmd := exec.Command(filepath.Join(bin, "mote-oci"), "--root", root, "--log", log, "--log-format", "json", "create", "--bundle", b, "bad1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("create of a bundle whose unikernel is a symlink to /etc/shadow succeeded:\n%s", out)
	}
	var last struct{ Level, Msg string }
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, log)), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &e) == nil && e.Level == "error" {
			last = e
		}
	}
	if !strings.Contains(last.Msg, "the unikernel") || !strings.Contains(last.Msg, "is not a regular file") {
		t.Errorf("the log's last error: %q\n%s", last.Msg, readFile(t, log))
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("state left in the root: %v", ents)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// podman with --runtime mote-oci: its storage and network configuration
// in the test's own directories. A Mote image's exit status comes back,
// a published port reaches the guest through podman's own pod network,
// podman logs shows its console, podman stop ends it through SIGTERM.
func TestPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil || os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root and podman (scripts/install-deps installs it)")
	}
	dir := t.TempDir()
	podman := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command("podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--tmpdir", filepath.Join(dir, "tmp"), "--network-config-dir", filepath.Join(dir, "net")}, args...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	// Storage is mounted under dir: podman takes it apart before the
	// directory goes.
	t.Cleanup(func() { podman("rm", "-af", "-t", "0"); podman("system", "reset", "-f") })
	rt := "--runtime=" + filepath.Join(bin, "mote-oci")
	for _, img := range []string{image(t, "hello", "../..", "./examples/hello", "-exit", "3"), image(t, "httpd", "../..", "./examples/httpd")} {
		if out, status := podman("load", "-i", img); status != 0 {
			t.Fatalf("podman load: %s", out)
		}
	}
	if out, status := podman("run", "--rm", rt, "mote-test/hello:1"); status != 3 || !strings.Contains(out, "hello from mote (target") {
		t.Errorf("podman run hello: status %d, want 3 and a greeting:\n%s", status, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, status := podman("run", "-d", "--name", "web", rt, "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "mote-test/httpd:1"); status != 0 {
		t.Fatalf("podman run -d: %s", out)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	var body string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && body == ""; time.Sleep(50 * time.Millisecond) {
		if resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", port)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
	}
	if !strings.Contains(body, `"service":"httpd"`) {
		logs, _ := podman("logs", "web")
		t.Fatalf("the published port answered %q\nlogs:\n%s", body, logs)
	}
	if logs, _ := podman("logs", "web"); !strings.Contains(logs, "msg=serving") || strings.Contains(logs, "mote-oci") {
		t.Errorf("podman logs: %q, want the guest's console alone", logs)
	}
	stopped := time.Now()
	if out, status := podman("stop", "-t", "10", "web"); status != 0 {
		t.Fatalf("podman stop: %s", out)
	}
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("podman stop took %v: the guest did not end on SIGTERM", d)
	}
	if out, _ := podman("inspect", "web", "--format", "{{.State.ExitCode}}"); strings.TrimSpace(out) != "0" {
		t.Errorf("exit code after SIGTERM: %q, want 0 (a clean shutdown)", out)
	}
	podman("rm", "web")
}

// getSoon GETs url until it answers (a guest still starting refuses),
// for up to 30 s, and returns the body.
func getSoon(t *testing.T, url string) string {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var resp *http.Response
		if resp, err = hc.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body)
		}
	}
	t.Fatalf("GET %s: %v", url, err)
	return ""
}
