package abi

import (
	"encoding/json"
	"fmt"
	"net"
)

// EnvManifest is the environment variable that carries the JSON manifest.
const EnvManifest = "MOTE_MANIFEST"

// Version is the manifest format this package writes and accepts.
const Version = 1

// Targets a manifest may name.
const (
	TargetUnix = "unix"
	TargetHVT  = "hvt"
	TargetSPT  = "spt"
)

// Manifest lists the devices a guest was started with.
type Manifest struct {
	Version int     `json:"version"`
	Target  string  `json:"target"`
	Net     []NIC   `json:"net,omitempty"`
	Block   []Block `json:"block,omitempty"`
	FS      []Tree  `json:"fs,omitempty"`
}

// Tree is a read-only file tree: on unix a host directory (Path); on hvt
// and spt a tar image on the named block device (Block).
type Tree struct {
	Name  string `json:"name"`
	Path  string `json:"path,omitempty"`
	Block string `json:"block,omitempty"`
}

// NIC is a network interface. On hvt and spt it is the descriptor FD whose
// reads and writes are whole Ethernet frames; on unix the host's own network
// is used and FD is absent.
type NIC struct {
	Name string `json:"name"`
	FD   int    `json:"fd"`
	MAC  string `json:"mac"`
	MTU  int    `json:"mtu"`
	// Addr is the interface's IPv4 address with prefix ("10.0.2.15/24");
	// empty means configure by DHCP.
	Addr    string   `json:"addr,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	// Ring, when set, is the guest address of the NIC's frame rings
	// (ring.go); frames then cross there, FD is the eventfd that tells the
	// guest the tender wrote, and Kick the guest address of the NIC's
	// doorbell: a 4-byte store there wakes the tender's device thread
	// without a system call.
	Ring uint64 `json:"ring,omitempty"`
	Kick uint64 `json:"kick,omitempty"`
	// RingFD, when set (spt), is a memory file holding the rings, which
	// the guest maps shared (abi.RingSize bytes at offset 0); FD is then
	// the eventfd that tells the guest the host wrote, and KickFD the
	// eventfd the guest writes to wake the host's device thread.
	RingFD int `json:"ring_fd,omitempty"`
	KickFD int `json:"kick_fd,omitempty"`
	// Neighbors are link addresses the tender already knows (user
	// networking's gateway and DNS relay): the guest does not ask for
	// them with ARP, which takes a round trip off its first packet to
	// each — the reply to a published port's first connection included.
	Neighbors []Neighbor `json:"neighbors,omitempty"`
}

// Neighbor is an IPv4 address on a NIC's link and its MAC.
type Neighbor struct {
	Addr string `json:"addr"`
	MAC  string `json:"mac"`
}

// Block is a block device: the descriptor FD (hvt, spt) or the host file
// Path (unix), addressed in whole sectors.
type Block struct {
	Name       string `json:"name"`
	FD         int    `json:"fd,omitempty"`
	Path       string `json:"path,omitempty"`
	SectorSize int    `json:"sector_size"`
	Sectors    int64  `json:"sectors"`
	ReadOnly   bool   `json:"read_only,omitempty"`
}

// ValidName reports whether s may name a device: a lower-case letter, then
// up to 31 lower-case letters, digits, '-' or '_'. (No regexp: the guest
// imports this package, and every page its start touches costs a
// unikernel time.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Parse decodes and validates a manifest.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("abi: manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Encode returns the manifest as the compact JSON a tender places in the
// guest's environment.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// Validate checks every field a guest relies on: the version, the target,
// unique well-formed names, distinct descriptors above stderr, sane sizes.
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("abi: manifest version %d, want %d", m.Version, Version)
	}
	switch m.Target {
	case TargetUnix, TargetHVT, TargetSPT:
	default:
		return fmt.Errorf("abi: manifest: unknown target %q", m.Target)
	}
	names := map[string]bool{}
	fds := map[int]string{}
	checkName := func(kind, name string) error {
		if !ValidName(name) {
			return fmt.Errorf("abi: manifest: %s device name %q is not valid", kind, name)
		}
		if names[name] {
			return fmt.Errorf("abi: manifest: device name %q used twice", name)
		}
		names[name] = true
		return nil
	}
	checkFD := func(name string, fd int) error {
		if m.Target == TargetUnix {
			return nil
		}
		if fd <= 2 {
			return fmt.Errorf("abi: manifest: device %q: descriptor %d is not above stderr", name, fd)
		}
		if other, ok := fds[fd]; ok {
			return fmt.Errorf("abi: manifest: devices %q and %q share descriptor %d", other, name, fd)
		}
		fds[fd] = name
		return nil
	}
	for _, n := range m.Net {
		if err := checkName("network", n.Name); err != nil {
			return err
		}
		if m.Target == TargetUnix {
			continue
		}
		if err := checkFD(n.Name, n.FD); err != nil {
			return err
		}
		if n.RingFD != 0 || n.KickFD != 0 {
			if n.Ring != 0 {
				return fmt.Errorf("abi: manifest: nic %q: rings both in memory and in a file", n.Name)
			}
			if err := checkFD(n.Name+" rings", n.RingFD); err != nil {
				return err
			}
			if err := checkFD(n.Name+" doorbell", n.KickFD); err != nil {
				return err
			}
			if n.MTU+18 > RingMaxFrame {
				return fmt.Errorf("abi: manifest: nic %q: MTU %d does not fit a ring slot", n.Name, n.MTU)
			}
		}
		if n.Ring != 0 {
			if n.Ring%4096 != 0 || n.Ring >= 1<<47 {
				return fmt.Errorf("abi: manifest: nic %q: bad ring address %#x", n.Name, n.Ring)
			}
			if n.Kick == 0 || n.Kick%4 != 0 || n.Kick >= 1<<47 {
				return fmt.Errorf("abi: manifest: nic %q: bad doorbell address %#x", n.Name, n.Kick)
			}
			if n.MTU+18 > RingMaxFrame {
				return fmt.Errorf("abi: manifest: nic %q: MTU %d does not fit a ring slot", n.Name, n.MTU)
			}
		}
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
			return fmt.Errorf("abi: manifest: nic %q: bad MAC %q", n.Name, n.MAC)
		}
		if n.MTU < 576 || n.MTU > 65535 {
			return fmt.Errorf("abi: manifest: nic %q: MTU %d out of range [576, 65535]", n.Name, n.MTU)
		}
		if n.Addr != "" {
			if ip, _, err := net.ParseCIDR(n.Addr); err != nil || ip.To4() == nil {
				return fmt.Errorf("abi: manifest: nic %q: bad IPv4 address %q", n.Name, n.Addr)
			}
		}
		if n.Gateway != "" && net.ParseIP(n.Gateway) == nil {
			return fmt.Errorf("abi: manifest: nic %q: bad gateway %q", n.Name, n.Gateway)
		}
		for _, d := range n.DNS {
			if net.ParseIP(d) == nil {
				return fmt.Errorf("abi: manifest: nic %q: bad DNS server %q", n.Name, d)
			}
		}
		for _, nb := range n.Neighbors {
			if ip := net.ParseIP(nb.Addr); ip == nil || ip.To4() == nil {
				return fmt.Errorf("abi: manifest: nic %q: bad neighbour address %q", n.Name, nb.Addr)
			}
			if hw, err := net.ParseMAC(nb.MAC); err != nil || len(hw) != 6 {
				return fmt.Errorf("abi: manifest: nic %q: neighbour %s: bad MAC %q", n.Name, nb.Addr, nb.MAC)
			}
		}
	}
	for _, b := range m.Block {
		if err := checkName("block", b.Name); err != nil {
			return err
		}
		if m.Target == TargetUnix {
			if b.Path == "" {
				return fmt.Errorf("abi: manifest: block %q: no host path", b.Name)
			}
		} else if err := checkFD(b.Name, b.FD); err != nil {
			return err
		}
		if b.SectorSize < 512 || b.SectorSize > 65536 || b.SectorSize&(b.SectorSize-1) != 0 {
			return fmt.Errorf("abi: manifest: block %q: sector size %d is not a power of two in [512, 65536]", b.Name, b.SectorSize)
		}
		if b.Sectors < 0 || b.Sectors > (1<<62)/int64(b.SectorSize) {
			return fmt.Errorf("abi: manifest: block %q: %d sectors out of range", b.Name, b.Sectors)
		}
	}
	blocks := map[string]bool{}
	for _, b := range m.Block {
		blocks[b.Name] = true
	}
	for _, t := range m.FS {
		if err := checkName("file tree", t.Name); err != nil {
			return err
		}
		switch {
		case m.Target == TargetUnix && t.Path == "":
			return fmt.Errorf("abi: manifest: file tree %q: no host path", t.Name)
		case m.Target != TargetUnix && !blocks[t.Block]:
			return fmt.Errorf("abi: manifest: file tree %q: no block device %q", t.Name, t.Block)
		}
	}
	return nil
}

// StackSocketFD is the descriptor number a socket of the guest's own
// TCP/IP stack shows to a function given its raw descriptor
// (syscall.RawConn.Control, as x/net's ipv4 and ipv6 packages and
// miekg/dns use to set options): setsockopt and getsockopt on it succeed
// and have no effect (getsockopt writes nothing), on hvt and spt alike;
// every other call on it fails with EBADF, as no such descriptor exists.
// The stack's options are set through net's own methods instead.
const StackSocketFD = 0x3fff_fff0
