package hvt

import (
	"runtime"
	"sync"
)

// hostProcs is the tender's GOMAXPROCS before any machine raised it.
var hostProcs = sync.OnceValue(func() int { return runtime.GOMAXPROCS(0) })

// reserveProcs gives the tender's Go scheduler a P for each host thread
// that the machine keeps in a long system call: the vCPUs running guest
// code sit in KVM_RUN, the guest's network poller in ppoll, each NIC's
// device thread in poll. Go counts a thread in a system call as holding
// its P until sysmon takes the P back, which, in a process otherwise
// idle, it does only every 10 ms. With GOMAXPROCS at the host's CPU
// count those threads held every P, and everything else in the tender
// waited for sysmon: with --net user, a published port's first TCP
// handshake took up to 19 ms instead of 50 µs (docs/hvt.md). The count
// never goes down: machines in one process (tests) share the scheduler.
func (m *machine) reserveProcs() {
	// The guest runs Go code on at most CPUs threads at once; its sysmon
	// and network poller come on top.
	want := hostProcs() + m.cfg.CPUs + 2 + len(m.devs)
	if runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
