package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations and labels that make an image a Mote image.
const (
	// AnnotationUnikernel, on the manifest and as a config label, is the
	// unikernel's path in the image: its presence says "a Mote image".
	AnnotationUnikernel = "org.moteos.mote.unikernel"
	LabelTarget         = "org.moteos.mote.target"  // hvt, spt
	LabelMemory         = "org.moteos.mote.memory"  // as mote run -m takes it
	LabelVersion        = "org.moteos.mote.version" // of the image format: 1
	// UnikernelPath is where the layer holds the unikernel.
	UnikernelPath = "/mote/unikernel"
	// ConfigPath is where the layer holds the image's RuntimeConfig.
	ConfigPath = "/mote/image.json"
)

// RuntimeConfig is the labels again, as a file in the layer: an OCI
// runtime sees the image's files (a bundle's rootfs) but not its config,
// and needs the target and memory to run it. Its presence makes a
// rootfs a Mote image's.
type RuntimeConfig struct {
	Version int    `json:"version"`          // 1
	Target  string `json:"target"`           // hvt or spt
	Memory  string `json:"memory,omitempty"` // as mote run -m takes it
}

// Image is what goes into an OCI image.
type Image struct {
	Unikernel string   // the unikernel's file
	Name, Tag string   // as in name:tag
	Target    string   // hvt or spt
	Memory    string   // guest memory, as mote run -m takes it ("" : mote's default)
	Args      []string // the program's arguments
	Env       []string // KEY=VALUE
	Ports     []string // container ports, 8080/tcp
	Volumes   []string // guest paths a runtime mounts something at
}

// epoch is the time of every file in the image, for reproducibility: the
// source's own (SOURCE_DATE_EPOCH, as reproducible builds set it) or 1970.
func epoch() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var n int64
		if _, err := fmt.Sscan(s, &n); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

// Write writes img as an OCI image layout tar to w and returns the
// manifest's digest, the image's identity.
func Write(w io.Writer, img Image) (digest.Digest, error) {
	if img.Target != "hvt" && img.Target != "spt" {
		return "", fmt.Errorf("ociimage: target %q: an OCI image holds an hvt or spt unikernel", img.Target)
	}
	if img.Name == "" || strings.ContainsAny(img.Name, " \t\n") {
		return "", fmt.Errorf("ociimage: image name %q", img.Name)
	}
	if img.Tag == "" {
		img.Tag = "latest"
	}
	bin, err := os.ReadFile(img.Unikernel)
	if err != nil {
		return "", fmt.Errorf("ociimage: %w", err)
	}
	when := epoch()

	rc, err := json.Marshal(RuntimeConfig{Version: 1, Target: img.Target, Memory: img.Memory})
	if err != nil {
		return "", err
	}

	// The layer: /mote/, the unikernel and its runtime config, owned by
	// root, at the epoch.
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"mote/", 0o755, nil},
		{strings.TrimPrefix(ConfigPath, "/"), 0o644, rc},
		{strings.TrimPrefix(UnikernelPath, "/"), 0o755, bin},
	} {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.body)), ModTime: when, Format: tar.FormatPAX}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	var layer bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&layer, gzip.BestCompression) // no name, no time: the same bytes each time
	zw.Write(layerTar.Bytes())
	if err := zw.Close(); err != nil {
		return "", err
	}

	labels := map[string]string{
		AnnotationUnikernel: UnikernelPath,
		LabelTarget:         img.Target,
		LabelVersion:        "1",
	}
	if img.Memory != "" {
		labels[LabelMemory] = img.Memory
	}
	cfg := v1.Image{
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config: v1.ImageConfig{
			Entrypoint: []string{UnikernelPath},
			Cmd:        img.Args,
			Env:        img.Env,
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar.Bytes())}},
	}
	if len(img.Ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range img.Ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	if len(img.Volumes) > 0 {
		cfg.Config.Volumes = map[string]struct{}{}
		for _, v := range img.Volumes {
			cfg.Config.Volumes[v] = struct{}{}
		}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	man := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfgJSON), Size: int64(len(cfgJSON))},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer.Bytes()), Size: int64(layer.Len()),
			Annotations: map[string]string{v1.AnnotationTitle: "unikernel"}}},
		Annotations: map[string]string{AnnotationUnikernel: UnikernelPath},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	manDigest := digest.FromBytes(manJSON)
	index := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: v1.MediaTypeImageManifest, Digest: manDigest, Size: int64(len(manJSON)),
			Platform: &v1.Platform{OS: "linux", Architecture: "amd64"},
			Annotations: map[string]string{
				v1.AnnotationRefName:       img.Tag,                     // skopeo's and podman's name within the layout
				"io.containerd.image.name": fullName(img.Name, img.Tag), // what ctr images import names it
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return "", err
	}
	layout, _ := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})

	files := map[string][]byte{
		v1.ImageLayoutFile: layout,
		"index.json":       indexJSON,
	}
	for _, b := range [][]byte{layer.Bytes(), cfgJSON, manJSON} {
		files["blobs/sha256/"+digest.FromBytes(b).Encoded()] = b
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	out := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := out.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: when, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
	}
	for _, n := range names {
		b := files[n]
		if err := out.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: when, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
		if _, err := out.Write(b); err != nil {
			return "", err
		}
	}
	return manDigest, out.Close()
}

// fullName is name:tag as containerd names images: a bare name is
// docker.io/library's, a name with a path docker.io's.
func fullName(name, tag string) string {
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	return name + ":" + tag
}
