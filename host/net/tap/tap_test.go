package tap

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMissingInterface(t *testing.T) {
	if _, err := Open("mote-no-such0"); err == nil || !strings.Contains(err.Error(), "ip tuntap add") {
		t.Fatalf("err = %v", err)
	}
}

// TestAttach creates a network namespace with a TAP device, attaches to it
// from inside, and sees a frame the guest side writes arrive on the
// interface's counters.
func TestAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root to create a network namespace and a TAP device")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIPPED LOUDLY: needs ip (iproute2)")
	}
	ns := "mote-tap-test"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
	run("netns", "add", ns)
	defer exec.Command("ip", "netns", "del", ns).Run()
	run("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
	run("-n", ns, "link", "set", "tap0", "up")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(orig)
	nsfd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	fd, err := Open("tap0")
	unix.Setns(orig, unix.CLONE_NEWNET)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	if _, err := unix.Write(fd, frame); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/tap0/statistics/rx_packets").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("rx_packets = %q, %v; want 1", out, err)
	}
}
