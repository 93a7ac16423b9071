package hvt

import (
	"testing"

	"golang.org/x/sys/unix"
)

// A descriptor the guest closes while another of its threads still has a
// call on it keeps its host descriptor until that call ends, as Linux
// keeps the file: the host number must not go to the next descriptor the
// tender makes meanwhile, which the call would then read or write.
func TestCloseWhileInUse(t *testing.T) {
	ft := &fdTable{files: map[int]*file{}}
	h, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	fd := uint64(ft.add(&file{kind: fileEventfd, host: h, readable: true, writable: true}))
	f := ft.acquire(fd) // a call in flight
	if res := ft.close(fd); res != 0 {
		t.Fatalf("close: %d", res)
	}
	if ft.acquire(fd) != nil || ft.close(fd) != -int64(unix.EBADF) {
		t.Fatal("a closed descriptor is still in the table")
	}
	h2, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) // the next host descriptor
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(h2)
	if _, err := unix.FcntlInt(uintptr(h), unix.F_GETFD, 0); err != nil || h2 == h {
		t.Fatalf("host descriptor %d closed under a call in flight (%v); the next one got %d", h, err, h2)
	}
	ft.release(f)
	if _, err := unix.FcntlInt(uintptr(h), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("host descriptor %d still open after the last call: %v", h, err)
	}
}

// A failing call takes back only the descriptors it installed: if another
// guest thread closed one meanwhile and got its number for a file of its
// own, that file stays.
func TestUndoTakesBackOnlyItsOwn(t *testing.T) {
	ft := &fdTable{files: map[int]*file{}}
	mine := &file{kind: filePipe, host: -1, readable: true}
	fd := ft.add(mine)
	ft.close(uint64(fd)) // another thread closes it
	theirs := &file{kind: fileEventfd, host: -1, readable: true}
	if got := ft.add(theirs); got != fd {
		t.Fatalf("the number went to %d, not %d", got, fd)
	}
	ft.undo(fd, mine)
	if ft.get(uint64(fd)) != theirs {
		t.Fatal("undo removed another thread's descriptor")
	}
	ft.undo(fd, theirs)
	if ft.get(uint64(fd)) != nil {
		t.Fatal("undo left its own descriptor")
	}
}
