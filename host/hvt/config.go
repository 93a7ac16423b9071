package hvt

import (
	"io"
	"os"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/ringdev"
	"github.com/moteos/mote/host/vfs"
)

// Config describes one guest run.
type Config struct {
	Image  string   // path of the static linux/amd64 ELF to boot
	Args   []string // argv[1:]; argv[0] is the image's base name
	Env    []string // KEY=VALUE pairs, in order
	Memory uint64   // bytes of guest memory the guest may touch (0: 64 MiB)
	CPUs   int      // CPUs reported by sched_getaffinity (0: 1)
	Strict bool     // kill the guest on a system call outside the ABI

	// ImageCache is a directory for shared-memory copies of images
	// (package imagecache), which start faster under nested paging; ""
	// boots from the image file's own pages.
	ImageCache string

	NICs   []NIC      // network interfaces, guest descriptors 3, 4, …
	Blocks []Block    // block devices, after the NICs
	Trees  []abi.Tree // read-only file trees: tar images on the named Blocks

	// Files is the guest's file tree (nil: none, every path is ENOENT);
	// Cwd its working directory ("" is /).
	Files *vfs.FS
	Cwd   string

	Stdout, Stderr io.Writer // guest fds 1 and 2 (nil: discarded)
	Stats          io.Writer // if set, per-syscall exit counts and times at exit
	Trace          io.Writer // if set, one line per exit: time, thread, call, result
	Profile        io.Writer // if set, the guest's CPU profile (pprof) at exit, sampled from outside

	// Ready, if set, is called once the machine is made and the image
	// loaded, before the first vCPU and the guest's first instruction:
	// devices whose host side starts meanwhile (a user network) wait
	// there. An error ends the run before the guest runs.
	Ready func() error

	// OnNIC, if set, is given each NIC's frame mover once it exists, so
	// that the caller can read its counters (mote run --metrics).
	OnNIC func(name string, dev *ringdev.Device)

	// Confine confines the whole tender process (host/confine) once the
	// machine is set up, before the guest's first instruction: for a
	// process that only runs guests from then on (mote run), never for one
	// that goes on to run programs (a test binary).
	Confine bool
}

// NIC is a network interface. HostFD carries whole Ethernet frames (a TAP
// device or a SOCK_SEQPACKET socket); the tender owns it once it has made
// the NIC's device, and closes it when the run ends (a Run that fails
// before that, on a bad image say, leaves it to the caller). The embedded
// description reaches the guest in its manifest; its FD field is set by
// the tender.
type NIC struct {
	abi.NIC
	HostFD int
}

// Block is a block device backed by a host file whose size is a multiple
// of SectorSize (0: 512). The tender owns File from Run on.
type Block struct {
	Name       string
	File       *os.File
	ReadOnly   bool
	SectorSize int
}
