package tap

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Open attaches to the TAP interface name, which must exist in the
// caller's network namespace, and returns a non-blocking, close-on-exec
// descriptor that reads and writes whole frames (no packet-info header).
func Open(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, fmt.Errorf("tap %s: %w (create it first: ip tuntap add dev %s mode tap)", name, err, name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("tap %s: open /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(ifi.Name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: attach (TUNSETIFF): %w (is it a TAP device, and may this user attach to it?)", name, err)
	}
	return fd, nil
}
