package hvt

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/image"
)

// A thread joins the thread table with its block ready: signal senders
// (here a process signal, as the host's SIGTERM or a guest's kill) read
// the block of every thread in the table, and clones race them. A thread
// published first, its block set after, crashed the tender.
func TestCloneRacesSignals(t *testing.T) {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		t.Skipf("SKIPPED LOUDLY: /dev/kvm is not usable (%v)", err)
	} else {
		f.Close()
	}
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
	m, err := newMachine(Config{Image: img.Path, Memory: 32 << 20}, img)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	c, err := m.createVCPU()
	if err != nil {
		t.Fatal(err)
	}
	m.parkVCPU(c) // closed with the machine

	stop := time.Now().Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			m.postProcessSignal(sigURG, siginfo{code: siUser})
		}
	}()
	for n := 0; time.Now().Before(stop); n++ {
		th, err := m.addThread(c, nil)
		if err != nil {
			t.Fatalf("clone %d: %v", n, err)
		}
		m.mu.Lock()
		delete(m.threads, th.tid)
		m.blocks[th.blkIndex] = false
		m.mu.Unlock()
		unix.Close(th.kickFD)
	}
	wg.Wait()
}
