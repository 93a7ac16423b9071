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

// helloImage builds the hello guest and opens it, closed when the test
// ends.
func helloImage(t *testing.T) *image.Image {
	t.Helper()
	var bin string
	if dir := os.Getenv("MOTE_TEST_GUESTS"); dir != "" { // see hvt_test.go
		bin = filepath.Join(dir, "hello")
	} else {
		bin = filepath.Join(t.TempDir(), "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/guests/hello")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the guest: %v\n%s", err, out)
		}
	}
	img, err := image.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// testMachine makes a machine for the hello guest, closed when the test
// ends; nothing runs in it until the test says so.
func testMachine(t *testing.T) *machine {
	t.Helper()
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		t.Skipf("SKIPPED LOUDLY: /dev/kvm is not usable (%v)", err)
	} else {
		f.Close()
	}
	img := helloImage(t)
	m, err := newMachine(Config{Image: img.Path, Memory: 32 << 20}, img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	return m
}

// A thread joins the thread table with its block ready: signal senders
// (here a process signal, as the host's SIGTERM or a guest's kill) read
// the block of every thread in the table, and clones race them. A thread
// published first, its block set after, crashed the tender.
func TestCloneRacesSignals(t *testing.T) {
	m := testMachine(t)
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

// A process signal kicks one thread; if that thread leaves without taking
// it, another that can take it is kicked, as Linux retargets it, instead of
// the signal waiting for some thread's next exit.
func TestProcessSignalOutlivesItsThread(t *testing.T) {
	m := testMachine(t)
	var ths []*thread
	for range 2 {
		c, err := m.createVCPU()
		if err != nil {
			t.Fatal(err)
		}
		th, err := m.addThread(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		ths = append(ths, th)
	}
	kicked := func(th *thread) bool {
		var b [8]byte
		n, _ := unix.Read(th.kickFD, b[:])
		return n == 8
	}
	m.postProcessSignal(sigURG, siginfo{code: siUser})
	var first, other *thread
	for _, th := range ths {
		if kicked(th) {
			first = th
		} else {
			other = th
		}
	}
	if first == nil || other == nil {
		t.Fatalf("a process signal kicked %v of two threads", first != nil && other == nil)
	}
	defer unix.Close(other.kickFD)
	first.finish() // leaves without taking the signal
	if !kicked(other) {
		t.Fatal("the pending process signal was not passed on when the thread it kicked left")
	}
}
