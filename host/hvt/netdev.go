package hvt

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// devSpin is how long a device thread polls before it sleeps.
const devSpin = 50 * time.Microsecond

// ringDev moves one NIC's frames between the guest's rings (abi/ring.go)
// and the host side of the NIC (a TAP device or a socket), on a tender
// thread of its own with ordinary host I/O. The guest exits only to sleep
// or to wake this thread when it sleeps; under load frames flow without
// exits.
type ringDev struct {
	m      *machine
	name   string
	host   int    // frames: TAP or SOCK_SEQPACKET
	ring   []byte // host view of the guest's ring region
	notify int    // eventfd the guest waits on (the tender's own descriptor)
	kick   int    // eventfd KVM signals when the guest rings the doorbell
	bell   uint64 // the doorbell's guest address
	bellPA uint64 // and its guest-physical one

	rxFrames, txFrames, dropped, kicks atomic.Uint64
}

// kickPage is where the NICs' doorbells are: one 4-byte word per NIC, NIC
// i's at kickPage+8i, on a page that no memory backs. KVM answers a store
// there itself (an ioeventfd) by signalling the device thread's eventfd;
// the exit costs a third of one the tender handles, and the tender only
// learns of it from the eventfd's counter. Registering the ioeventfd
// costs the host kernel several milliseconds (it waits for a grace
// period), so the device thread does it while the guest starts; until
// then, and if it fails, the store reaches the tender as an MMIO exit and
// the tender rings the eventfd itself. Any other access to the page stops
// the guest.
const kickPage = ringBase - pageSize

// ringNIC maps NIC i's rings into the guest and prepares its device.
func (m *machine) ringNIC(i, hostFD int, name string) (*ringDev, error) {
	mem := m.mem
	mem.mu.Lock()
	pa, err := mem.allocHuge()
	va := ringBase + uint64(i)*hugeSize
	if err == nil {
		err = mem.mapHuge(va, pa, ptePresent|pteUser|pteWrite|pteNX)
	}
	if err == nil {
		mem.insert(area{va, va + hugeSize, protRead | protWrite, areaDevice})
	}
	mem.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("hvt: nic %s rings: %w", name, err)
	}
	d := &ringDev{m: m, name: name, host: hostFD, ring: mem.host[pa : pa+abi.RingSize], notify: -1, kick: -1,
		bell: kickPage + 8*uint64(i)}
	if d.notify, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		d.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}
	if err == nil {
		err = m.mapKickPage()
		d.bellPA = m.kickPA + 8*uint64(i)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("hvt: nic %s: %w", name, err)
	}
	m.devs = append(m.devs, d)
	return d, nil
}

// mapKickPage maps the doorbell page once, for the first NIC.
func (m *machine) mapKickPage() error {
	if m.kickPA != 0 {
		return nil
	}
	mem := m.mem
	mem.mu.Lock()
	defer mem.mu.Unlock()
	pa := m.doorbellPA + pageSize // past RAM and the system-call doorbell: no slot
	if err := mem.mapPage(kickPage, pa, ptePresent|pteUser|pteWrite|pteNX); err != nil {
		return err
	}
	mem.insert(area{kickPage, kickPage + pageSize, protWrite, areaDevice})
	m.kickPA = pa
	return nil
}

func (d *ringDev) close() {
	for _, fd := range []int{d.notify, d.kick, d.host} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (d *ringDev) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&d.ring[off])) }

func (d *ringDev) signal(fd int) {
	var one [8]byte
	one[0] = 1
	unix.Write(fd, one[:])
}

// run serves the rings until the machine stops.
func (d *ringDev) run() {
	defer d.m.wg.Done()
	// One host thread for the device's life: as an ordinary goroutine,
	// which blocks in poll and polls in between, it moved between Go's
	// threads, and the hand-offs and spinning threads cost the host more
	// CPU than the device's work (55 against 42 CPU-µs per HTTP request, and 27.5k
	// against 35.7k req/s, medians of 6 interleaved runs).
	runtime.LockOSThread() // and left locked: Go retires the thread with its name
	nameThread("nic:" + d.name)
	d.m.vm.IOEventFD(d.bellPA, d.kick) // on failure, kicks exit to the tender: slower, not wrong
	buf := make([]byte, 65536)
	var idleSince time.Time
	for {
		tx := d.moveTx()
		rx, rxFull := d.moveRx(buf)
		if tx || rx {
			idleSince = time.Time{}
			continue
		}
		// Poll a little before sleeping: a guest that must kick a sleeping
		// device pays an exit, far more than this thread's polling. Between
		// looks the thread yields the core to the host's other threads (the
		// vCPUs): sched_yield, not runtime.Gosched, which on a locked
		// thread hands the goroutine to another thread and back.
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) < devSpin {
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		idleSince = time.Time{}
		// Idle: ask the guest for a kick, look once more, then sleep.
		atomic.StoreUint32(d.word(abi.RingTxNeedKick), 1)
		if atomic.LoadUint32(d.word(abi.RingTxHead)) != atomic.LoadUint32(d.word(abi.RingTxTail)) {
			atomic.StoreUint32(d.word(abi.RingTxNeedKick), 0)
			continue
		}
		fds := []unix.PollFd{{Fd: int32(d.kick), Events: unix.POLLIN}, {Fd: int32(d.m.stopFD), Events: unix.POLLIN}}
		if !rxFull {
			fds = append(fds, unix.PollFd{Fd: int32(d.host), Events: unix.POLLIN})
		}
		timeout := -1
		if rxFull {
			timeout = 1 // the guest frees slots without telling: look again soon
		}
		unix.Poll(fds, timeout)
		atomic.StoreUint32(d.word(abi.RingTxNeedKick), 0)
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents != 0 {
			d.countKicks()
		}
	}
}

// doorbell answers a store to the doorbell page that reached the tender
// (see kickPage); it reports whether addr is a doorbell.
func (m *machine) doorbell(addr uint64) bool {
	for _, d := range m.devs {
		if addr == d.bellPA {
			d.signal(d.kick)
			return true
		}
	}
	return false
}

// countKicks takes the doorbell's count of stores (each an exit) from
// its eventfd.
func (d *ringDev) countKicks() {
	var b [8]byte
	if n, _ := unix.Read(d.kick, b[:]); n == 8 {
		d.kicks.Add(binary.LittleEndian.Uint64(b[:]))
	}
}

// moveTx sends the frames the guest queued; it reports progress.
func (d *ringDev) moveTx() bool {
	tail := atomic.LoadUint32(d.word(abi.RingTxTail))
	head := atomic.LoadUint32(d.word(abi.RingTxHead))
	if head-tail > abi.RingSlots {
		// A corrupt head from the guest: take what the ring can hold.
		head = tail + abi.RingSlots
	}
	moved := false
	for ; tail != head; tail++ {
		slot := d.ring[abi.RingTx+int(tail%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
		n := int(binary.LittleEndian.Uint32(slot))
		if n < 14 || n > abi.RingMaxFrame {
			d.dropped.Add(1)
		} else if _, err := unix.Write(d.host, slot[abi.RingSlotData:abi.RingSlotData+n]); err == unix.EAGAIN {
			break // the host side is full: try again after the next wake
		} else if err != nil {
			d.dropped.Add(1)
		} else {
			d.txFrames.Add(1)
		}
		moved = true
		atomic.StoreUint32(d.word(abi.RingTxTail), tail+1)
	}
	return moved
}

// moveRx queues frames from the host for the guest, and notifies the
// guest if it sleeps; it reports progress and whether the ring is full.
func (d *ringDev) moveRx(buf []byte) (moved, full bool) {
	head := atomic.LoadUint32(d.word(abi.RingRxHead))
	for {
		if head-atomic.LoadUint32(d.word(abi.RingRxTail)) >= abi.RingSlots {
			full = true
			break
		}
		n, err := unix.Read(d.host, buf)
		if err != nil || n == 0 {
			break
		}
		if n < 14 || n > abi.RingMaxFrame {
			d.dropped.Add(1)
			continue
		}
		slot := d.ring[abi.RingRx+int(head%abi.RingSlots)*abi.RingSlotSize:][:abi.RingSlotSize]
		binary.LittleEndian.PutUint32(slot, uint32(n))
		copy(slot[abi.RingSlotData:], buf[:n])
		head++
		atomic.StoreUint32(d.word(abi.RingRxHead), head)
		d.rxFrames.Add(1)
		moved = true
	}
	if moved && atomic.LoadUint32(d.word(abi.RingRxNeedKick)) != 0 {
		atomic.StoreUint32(d.word(abi.RingRxNeedKick), 0)
		d.signal(d.notify)
	}
	return moved, full
}
