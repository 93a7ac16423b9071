package hvt

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moteos/mote/host/hvt/shim"
	"github.com/moteos/mote/host/image"
)

// TestSyscallPatches rewrites a real guest's runtime: the generic
// Syscall6 and the runtime's own wrappers call the shim, each at the entry
// for the call number the site loaded; a dying thread's exit and
// rt_sigreturn keep their SYSCALL.
func TestSyscallPatches(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/guests/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, out)
	}
	img, err := image.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m := &machine{img: img}

	names := append([]string{shim.Syscall6, "runtime.exitThread", "runtime.sigreturn__sigaction"}, shim.Functions...)
	funcs := img.Funcs(names...)
	in := map[string]int{}
	for _, p := range m.syscallPatches() {
		if p.code[0] != 0xe8 {
			t.Fatalf("patch at %#x is not a call: % x", p.va, p.code)
		}
		target := uint64(int64(p.va+5) + int64(int32(binary.LittleEndian.Uint32(p.code[1:]))))
		orig, _ := img.Text(p.va, uint64(len(p.code)))
		var want uint64
		switch {
		case len(p.code) == 5:
			want = shimBase + shim.Syscall6Entry
		case orig[0] == 0xb8: // mov $nr, %eax
			off, _ := shim.Entry(uint64(binary.LittleEndian.Uint32(orig[1:])))
			want = shimBase + off
		default: // mov $nr, %rax
			off, _ := shim.Entry(uint64(binary.LittleEndian.Uint32(orig[3:])))
			want = shimBase + off
		}
		if target != want {
			t.Errorf("call at %#x goes to %#x, want %#x (original % x)", p.va, target, want, orig)
		}
		for n, r := range funcs {
			if p.va >= r[0] && p.va < r[1] {
				in[n]++
			}
		}
	}
	for _, n := range []string{shim.Syscall6, "runtime.futex", "runtime.sysMmap", "runtime.write1", "runtime.clone", "runtime.usleep"} {
		if in[n] == 0 {
			t.Errorf("no site rewritten in %s (rewritten: %v)", n, in)
		}
	}
	if in[shim.Syscall6] != 1 {
		t.Errorf("%d sites rewritten in %s, want 1", in[shim.Syscall6], shim.Syscall6)
	}
	for _, n := range []string{"runtime.exitThread", "runtime.sigreturn__sigaction"} {
		if _, ok := funcs[n]; !ok {
			t.Errorf("%s not found in the guest", n)
		}
		if in[n] != 0 {
			t.Errorf("%s was rewritten", n)
		}
	}
}
