package ociruntime

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlocking a pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("a pty's number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// sendConsole passes a terminal's master to the console socket, as runc
// does: the terminal's name as data, the descriptor as SCM_RIGHTS.
func sendConsole(socket string, master *os.File) error {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer c.Close()
	oob := unix.UnixRights(int(master.Fd()))
	if _, _, err := c.(*net.UnixConn).WriteMsgUnix([]byte(master.Name()), oob, nil); err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	return nil
}
