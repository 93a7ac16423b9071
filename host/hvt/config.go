package hvt

import "io"

// Config describes one guest run.
type Config struct {
	Image  string   // path of the static linux/amd64 ELF to boot
	Args   []string // argv[1:]; argv[0] is the image's base name
	Env    []string // KEY=VALUE pairs, in order
	Memory uint64   // bytes of guest memory the guest may touch (0: 64 MiB)
	CPUs   int      // CPUs reported by sched_getaffinity (0: 1)
	Strict bool     // kill the guest on a system call outside the ABI

	Stdout, Stderr io.Writer // guest fds 1 and 2 (nil: discarded)
	Stats          io.Writer // if set, per-syscall exit counts and times at exit
	Trace          io.Writer // if set, one line per exit: time, thread, call, result
}
