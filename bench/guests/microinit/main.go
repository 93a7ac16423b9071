// Command microinit is the /init of the benchmark's minimal Linux microVM
// (see bench/microvm). It is the smallest init that lets a static Go program
// run as a networked service on Debian's stock kernel:
//
//  1. mounts /proc (for /proc/cmdline) and devtmpfs on /dev (Go programs
//     expect /dev/null, /dev/urandom);
//  2. loads the kernel modules listed, in order, in /modules/order
//     (finit_module; Debian builds virtio and virtio_net as modules);
//  3. if the kernel command line has mote.ip=ADDR/PREFIX, waits (bounded)
//     for eth0 and gives it that address, plus a default route through
//     mote.gw=ADDR when given; lo is always brought up;
//  4. runs /app with the arguments the kernel passed to init (those after
//     "--" on its command line), on the console, and waits for it;
//  5. powers the machine off, so that QEMU exits.
//
// Any failure is printed to the console as "microinit: ..." and also ends
// in a power-off: a benchmark must never hang on a half-booted guest.
package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethWait bounds the wait for eth0: virtio_net's probe normally finishes
// inside finit_module, so the wait only covers a slow or missing device.
const ethWait = 5 * time.Second

func main() {
	// Run as anything but PID 1 (say, by mistake on the host), this program
	// would mount over /dev and power the machine off: refuse.
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "microinit: not PID 1; this is the /init of a microVM, refusing to run")
		os.Exit(2)
	}
	rawConsole()
	if err := setup(); err != nil {
		fail(err)
	}
	cmd := exec.Command("/app", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "microinit: /app: %v\n", err)
	}
	powerOff()
}

func setup() error {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"devtmpfs", "/dev"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	if err := loadModules("/modules"); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	return network(string(cmdline))
}

// loadModules loads dir's modules in the order dir/order gives (one file
// name a line; the host resolved the dependencies). No order file, no
// modules.
func loadModules(dir string) error {
	order, err := os.ReadFile(filepath.Join(dir, "order"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		// EEXIST: already in the kernel (built in, or listed twice).
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	return nil
}

// network brings lo up and, when the command line has mote.ip, configures
// eth0 from mote.ip and mote.gw.
func network(cmdline string) error {
	var ip, gw string
	for _, f := range strings.Fields(cmdline) {
		if f == "--" {
			break
		}
		if v, ok := strings.CutPrefix(f, "mote.ip="); ok {
			ip = v
		} else if v, ok := strings.CutPrefix(f, "mote.gw="); ok {
			gw = v
		}
	}
	// An AF_INET datagram socket is the handle the interface ioctls need.
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	// Bringing lo up makes the kernel give it 127.0.0.1/8 by itself.
	if err := ifUp(s, "lo"); err != nil {
		return err
	}
	if ip == "" {
		return nil
	}
	pfx, err := netip.ParsePrefix(ip)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("mote.ip=%q: want an IPv4 ADDR/PREFIX", ip)
	}
	if err := waitLink(s, "eth0"); err != nil {
		return err
	}
	if err := ifSetInet4(s, "eth0", unix.SIOCSIFADDR, pfx.Addr()); err != nil {
		return err
	}
	mask := netip.AddrFrom4([4]byte(netmask(pfx.Bits())))
	if err := ifSetInet4(s, "eth0", unix.SIOCSIFNETMASK, mask); err != nil {
		return err
	}
	if err := ifUp(s, "eth0"); err != nil {
		return err
	}
	if gw == "" {
		return nil
	}
	g, err := netip.ParseAddr(gw)
	if err != nil || !g.Is4() {
		return fmt.Errorf("mote.gw=%q: want an IPv4 address", gw)
	}
	return defaultRoute(s, g)
}

func netmask(bits int) []byte {
	m := uint32(0)
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// waitLink polls for the interface for at most ethWait.
func waitLink(s int, name string) error {
	deadline := time.Now().Add(ethWait)
	for {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		err = unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v (is virtio_net loaded and a virtio-net-device given?): %w", name, ethWait, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ifSetInet4(s int, name string, req uint, a netip.Addr) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	b := a.As4()
	if err := ifr.SetInet4Addr(b[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, req, ifr); err != nil {
		return fmt.Errorf("%s: ioctl %#x %v: %w", name, req, a, err)
	}
	return nil
}

func ifUp(s int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: set up: %w", name, err)
	}
	return nil
}

// rtentry is Linux's struct rtentry (<linux/route.h>) for SIOCADDRT; Go
// lays it out as C does on LP64 (x86_64, arm64). x/sys/unix lacks it, and
// one ioctl is far less code than a netlink RTM_NEWROUTE message.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uint64
	pad4    uintptr
	metric  int16
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
}

func defaultRoute(s int, gw netip.Addr) error {
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY}
	rt.dst.Family = unix.AF_INET // 0.0.0.0
	rt.genmask.Family = unix.AF_INET
	rt.gateway.Family = unix.AF_INET
	rt.gateway.Addr = gw.As4()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt)))
	if errno != 0 {
		return fmt.Errorf("default route via %v: %w", gw, errno)
	}
	return nil
}

// rawConsole turns off the console's output post-processing (\n to \r\n),
// so that the host reads the app's output byte for byte.
func rawConsole() {
	t, err := unix.IoctlGetTermios(1, unix.TCGETS)
	if err != nil {
		return // not a tty: nothing to undo
	}
	t.Oflag &^= unix.OPOST
	unix.IoctlSetTermios(1, unix.TCSETS, t)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "microinit: %v\n", err)
	powerOff()
}

// powerOff lets the console drain, then powers off (QEMU exits). Should
// that fail, a reboot also ends QEMU when it runs with -no-reboot; and
// should that fail too, PID 1 exiting panics the kernel, which
// panic=-1 on the command line turns into a reboot.
func powerOff() {
	unix.IoctlSetInt(1, unix.TCSBRK, 1) // tcdrain: don't cut the last lines
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(os.Stderr, "microinit: power off: %v\n", err)
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	fmt.Fprintf(os.Stderr, "microinit: reboot: %v\n", err)
	os.Exit(1)
}
