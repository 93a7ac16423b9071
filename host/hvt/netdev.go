package hvt

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/ringdev"
)

// ringDev is one NIC's frame mover (host/ringdev) and its doorbell: a
// word of guest memory that KVM turns into a signal of the device's kick
// eventfd.
type ringDev struct {
	*ringdev.Device
	m      *machine
	name   string
	bell   uint64 // the doorbell's guest address
	bellPA uint64 // and its guest-physical one
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
	d := &ringDev{Device: &ringdev.Device{Ring: mem.host[pa : pa+abi.RingSize], Host: hostFD, Notify: -1, Kick: -1, Stop: m.stopFD},
		m: m, name: name, bell: kickPage + 8*uint64(i)}
	if d.Notify, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		d.Kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
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
	if m.cfg.OnNIC != nil {
		m.cfg.OnNIC(name, d.Device)
	}
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
	for _, fd := range []int{d.Notify, d.Kick, d.Host} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// run serves the rings until the machine stops, on a host thread of its
// own, named for top -H.
func (d *ringDev) run() {
	defer d.m.wg.Done()
	runtime.LockOSThread() // and left locked: Go retires the thread with its name
	nameThread("nic:" + d.name)
	d.m.vm.IOEventFD(d.bellPA, d.Kick) // on failure, kicks exit to the tender: slower, not wrong
	d.Serve()
}

// doorbell answers a store to the doorbell page that reached the tender
// (see kickPage); it reports whether addr is a doorbell.
func (m *machine) doorbell(addr uint64) bool {
	for _, d := range m.devs {
		if addr == d.bellPA {
			d.Wake()
			return true
		}
	}
	return false
}
