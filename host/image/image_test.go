package image_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moteos/mote/host/image"
)

// guest builds a small static Go program, as mote build does.
func guest(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	// leaf is on line 4 and its first instruction on line 5: it has no
	// prologue, so only the pclntab's record knows where it starts.
	prog := "package main\n\n//go:noinline\nfunc leaf(n int) int {\n\treturn n * 3\n}\n\nfunc main() { println(leaf(2)) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a guest: %v\n%s", err, out)
	}
	return bin
}

// TestFuncsFindsRuntimeFunctions looks up Go and assembly (ABI0)
// functions by name, and leaves out names the program lacks.
func TestFuncsFindsRuntimeFunctions(t *testing.T) {
	img, err := image.Open(guest(t))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := img.Funcs("runtime.main", "runtime.usleep", "main.main", "runtime.noSuchFunction")
	for _, name := range []string{"runtime.main", "runtime.usleep", "main.main"} {
		r, ok := got[name]
		if !ok || r[0] == 0 || r[1] <= r[0] {
			t.Errorf("%s: %v %v", name, r, ok)
			continue
		}
		if f := img.Symbolize(r[0]); f.Function != name {
			t.Errorf("%s at %#x symbolizes as %v", name, r[0], f)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d functions, want 3: %v", len(got), got)
	}
	// Names shorter than the 8-byte prefilter.
	if got := img.Funcs("x", "main.main"); len(got) != 1 || got["main.main"][0] == 0 {
		t.Errorf("with a short name: %v", got)
	}
}

// TestSymbolizeStartLine gives each function its declaration line, which a
// CPU profile needs for go build -pgo.
func TestSymbolizeStartLine(t *testing.T) {
	img, err := image.Open(guest(t))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	fs := img.Funcs("main.leaf", "main.main")
	for name, want := range map[string]int{"main.leaf": 4, "main.main": 8} {
		r := fs[name]
		for _, pc := range []uint64{r[0], r[1] - 1} {
			if f := img.Symbolize(pc); f.Function != name || f.StartLine != want {
				t.Errorf("%#x: %s starting at line %d, want %s at %d", pc, f.Function, f.StartLine, name, want)
			}
		}
	}
}

// FuzzParse: a malformed image is refused with an error, never a panic,
// and what the tender asks of an image it accepted (functions by name,
// their code, a symbolized address, its description) never panics either.
// The seed is a real Go program; `go test -fuzz FuzzParse` mutates it.
func FuzzParse(f *testing.F) {
	data, err := os.ReadFile(guest(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:64])
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := image.Parse("fuzz", data)
		if err != nil {
			return
		}
		for _, r := range img.Funcs("runtime.main", "main.main", "runtime.usleep") {
			img.Text(r[0], r[1]-r[0])
			img.Symbolize(r[0])
		}
		img.Symbolize(img.Entry)
		img.Describe()
	})
}
