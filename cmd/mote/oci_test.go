package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/moteos/mote/internal/containerdtest"
)

// readOCI reads an OCI layout tar into its files.
func readOCI(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
}

// mote build --oci: an OCI image layout that holds the unikernel and
// what Mote needs to run it, the same bytes from the same source, and
// one that skopeo (as the container tools' own reader) takes.
func TestBuildOCI(t *testing.T) {
	dir := t.TempDir()
	args := []string{"build", "-t", "spt", "--tag", "example/hello:1.0", "-m", "32M", "--port", "8080", "--port", "53/udp",
		"--env", "GREETING=hi", "--volume", "/data", "--oci"}
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	for _, out := range []string{a, b} {
		if got := mote(t, append(args, out, "./examples/hello", "--", "one", "two")...); got.status != 0 || !strings.Contains(got.stdout, "example/hello:1.0 sha256:") {
			t.Fatalf("build --oci: status %d\n%s%s", got.status, got.stdout, got.stderr)
		}
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Error("two builds of the same source gave different images")
	}

	files := readOCI(t, a)
	var index v1.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if ann := index.Manifests[0].Annotations; ann[v1.AnnotationRefName] != "1.0" || ann["io.containerd.image.name"] != "docker.io/example/hello:1.0" {
		t.Errorf("index annotations: %v", ann)
	}
	blob := func(d v1.Descriptor) []byte { return files["blobs/sha256/"+d.Digest.Encoded()] }
	var man v1.Manifest
	json.Unmarshal(blob(index.Manifests[0]), &man)
	if man.Annotations["org.moteos.mote.unikernel"] != "/mote/unikernel" || len(man.Layers) != 1 {
		t.Fatalf("manifest: %s", blob(index.Manifests[0]))
	}
	var cfg v1.Image
	json.Unmarshal(blob(man.Config), &cfg)
	c := cfg.Config
	if c.Labels["org.moteos.mote.target"] != "spt" || c.Labels["org.moteos.mote.memory"] != "32M" ||
		!slices.Equal(c.Cmd, []string{"one", "two"}) || !slices.Equal(c.Env, []string{"GREETING=hi"}) ||
		len(c.ExposedPorts) != 2 || c.ExposedPorts["8080/tcp"] != struct{}{} || c.Volumes["/data"] != struct{}{} ||
		!slices.Equal(c.Entrypoint, []string{"/mote/unikernel"}) {
		t.Errorf("config: %s", blob(man.Config))
	}
	// The layer's unikernel is what mote build makes of the package.
	zr, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var uni, rc []byte
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		switch h.Name {
		case "mote/unikernel":
			uni, _ = io.ReadAll(tr)
		case "mote/image.json":
			rc, _ = io.ReadAll(tr)
		}
	}
	// The runtime's config, for runtimes that see only the image's files.
	if want := `{"version":1,"target":"spt","memory":"32M"}`; string(rc) != want {
		t.Errorf("mote/image.json: %s, want %s", rc, want)
	}
	plain := filepath.Join(dir, "hello.spt")
	if got := mote(t, "build", "-t", "spt", "-o", plain, "./examples/hello"); got.status != 0 {
		t.Fatal(got.stderr)
	}
	if want, _ := os.ReadFile(plain); len(uni) == 0 || !bytes.Equal(uni, want) {
		t.Errorf("the layer's unikernel (%d bytes) is not mote build's (%d bytes)", len(uni), len(want))
	}

	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Log("SKIPPED LOUDLY: skopeo is not installed (scripts/install-deps installs it): the image was not read by a container tool")
		return
	}
	out, err := exec.Command("skopeo", "inspect", "oci-archive:"+a).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"org.moteos.mote.unikernel": "/mote/unikernel"`) {
		t.Errorf("skopeo inspect: %v\n%s", err, out)
	}
	if out, err := exec.Command("skopeo", "copy", "oci-archive:"+a, "oci:"+filepath.Join(dir, "copy")+":1.0").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy: %v\n%s", err, out)
	}
}

func TestBuildOCIErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.tar")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "-t", "unix", "--oci", out, "./examples/hello"}, "not -t unix"},
		{[]string{"build", "-t", "spt", "--oci", out, "--tag", "Bad Name", "./examples/hello"}, "want NAME[:TAG]"},
		{[]string{"build", "-t", "spt", "--oci", out, "--port", "99999", "./examples/hello"}, "from 1 to 65535"},
		{[]string{"build", "-t", "spt", "--oci", out, "--volume", "data", "./examples/hello"}, "absolute"},
		{[]string{"build", "-t", "spt", "--tag", "x:1", "./examples/hello"}, "are for --oci"},
	} {
		if got := mote(t, c.args...); got.status != exitUsage || !strings.Contains(got.stderr, c.want) {
			t.Errorf("%q: status %d, stderr %q", c.args, got.status, got.stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused build left its output")
	}
}

// containerd imports a Mote OCI image under the name mote build gave it.
// The test runs a containerd of its own (its root, state and socket in a
// temporary directory) and stops it by its PID.
func TestOCIImageImportedByContainerd(t *testing.T) {
	cd := containerdtest.Start(t)
	image := filepath.Join(t.TempDir(), "hello.tar")
	if got := mote(t, "build", "-t", "spt", "--oci", image, "--tag", "mote-test/hello:1", "./examples/hello"); got.status != 0 {
		t.Fatal(got.stderr)
	}
	cd.MustCtr("images", "import", image)
	if out := cd.MustCtr("images", "ls", "-q"); !strings.Contains(out, "docker.io/mote-test/hello:1") {
		t.Errorf("ctr images ls: %q", out)
	}
}
