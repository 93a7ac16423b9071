package ociruntime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/ociimage"
)

// Init is a container's init process, which create starts with the
// container's directory as its argument and the sync pipe as descriptor
// 3: it enters the container's network namespace, sets up the pod's
// network, tells create how that went, waits for start, and becomes
// mote. It does not return.
func Init(dir string) {
	sync := os.NewFile(3, "sync")
	argv, err := initialize(dir, sync)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mote-oci: %v\n", err)
		os.Exit(127)
	}
	err = unix.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "mote-oci: exec %s: %v\n", argv[0], err)
	os.Exit(127)
}

func initialize(dir string, sync *os.File) ([]string, error) {
	// Namespaces are a thread's: this one enters them and execs.
	runtime.LockOSThread()
	reply := func(m syncMsg) error {
		b, _ := json.Marshal(m)
		_, err := sync.Write(b)
		sync.Close()
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		reply(syncMsg{Error: err.Error()})
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		reply(syncMsg{Error: err.Error()})
		return nil, err
	}
	p := c.Plan
	var net *PodNet
	switch {
	case p.NetNS != "":
		fd, err := unix.Open(p.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err == nil {
			net, err = setupPodNet(p.NetNS, p.DNS)
		}
		if err != nil {
			err = fmt.Errorf("network namespace %s: %w", p.NetNS, err)
			reply(syncMsg{Error: err.Error(), Net: net})
			return nil, err
		}
	case p.NewNetNS:
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("new network namespace: %w", err)
			reply(syncMsg{Error: err.Error()})
			return nil, err
		}
	}
	nic := ""
	if net != nil {
		nic = net.NIC()
	}
	argv := append([]string{c.Mote}, p.MoteArgs(nic)...)
	if err := reply(syncMsg{Net: net}); err != nil {
		return nil, err
	}

	// Wait for start: opening the FIFO to write blocks until start opens
	// it to read.
	fifo, err := os.OpenFile(filepath.Join(dir, fifoFile), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := fifo.Write([]byte{0}); err != nil {
		return nil, err
	}
	fifo.Close()
	// Checked again just before mote opens it by name: a path that is
	// not an image is, to mote run, a package to build.
	if err := regularInRoot(strings.TrimSuffix(p.Image, ociimage.UnikernelPath), ociimage.UnikernelPath); err != nil {
		return nil, fmt.Errorf("the unikernel: %w", err)
	}
	return argv, nil
}
