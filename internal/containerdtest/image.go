package containerdtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// pauseSource is a pod's pause program: it waits for SIGTERM or SIGINT
// and exits, as Kubernetes' pause does.
const pauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

// PauseImage builds a pause image (a static Go program, no Mote in it) as
// an OCI layout tar named docker.io/NAME:TAG, for a CRI containerd that
// cannot pull registry.k8s.io/pause; it returns the tar's path.
func PauseImage(t testing.TB, name, tag string) string {
	t.Helper()
	src, dir := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module pause\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(pauseSource), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "pause"), ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building pause: %v\n%s", err, out)
	}
	return Image(t, name, tag, filepath.Join(dir, "pause"))
}

// Image writes an ordinary image (not a Mote image) holding one static
// program, its entrypoint, as an OCI layout tar named docker.io/NAME:TAG,
// and returns the tar's path.
func Image(t testing.TB, name, tag, program string) string {
	t.Helper()
	bin, err := os.ReadFile(program)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(program)
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg})
	tw.Write(bin)
	tw.Close()
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	zw.Write(layerTar.Bytes())
	zw.Close()

	cfg, _ := json.Marshal(v1.Image{
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config:   v1.ImageConfig{Entrypoint: []string{"/" + base}},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar.Bytes())}},
	})
	man, _ := json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer.Bytes()), Size: int64(layer.Len())}},
	})
	index, _ := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man)),
			Annotations: map[string]string{v1.AnnotationRefName: tag, "io.containerd.image.name": "docker.io/" + name + ":" + tag}}},
	})
	layout, _ := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	out := filepath.Join(t.TempDir(), base+".tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := tar.NewWriter(f)
	put := func(n string, b []byte) {
		w.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		w.Write(b)
	}
	put(v1.ImageLayoutFile, layout)
	put("index.json", index)
	for _, b := range [][]byte{layer.Bytes(), cfg, man} {
		put("blobs/sha256/"+digest.FromBytes(b).Encoded(), b)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
