package ringdev

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// A host side with no room for the guest's frames (a full socket) puts
// the device to sleep until there is room, not in a loop that never looks
// at Stop: the tender's teardown waits for Serve to return.
func TestServeStopsWhileHostFull(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	frame := make([]byte, 1500)
	for {
		if _, err := unix.Write(fds[0], frame); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var efds [3]int
	for i := range efds {
		if efds[i], err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(efds[i])
	}
	d := &Device{Ring: make([]byte, abi.RingSize), Host: fds[0], Notify: efds[0], Kick: efds[1], Stop: efds[2]}
	for i := range 4 { // frames the host side has no room for
		binary.LittleEndian.PutUint32(d.Ring[abi.RingTx+i*abi.RingSlotSize:], 60)
	}
	binary.LittleEndian.PutUint32(d.Ring[abi.RingTxHead:], 4)

	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Serve()
	}()
	time.Sleep(100 * time.Millisecond)
	unix.Write(d.Stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop while the host side was full")
	}
	if tail := binary.LittleEndian.Uint32(d.Ring[abi.RingTxTail:]); tail != 0 {
		t.Errorf("%d frames taken from the ring, though the host side had no room", tail)
	}
}
