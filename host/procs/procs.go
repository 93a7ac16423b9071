package procs

import (
	"runtime"
	"sync"
)

// host is GOMAXPROCS before anything raised it.
var host = sync.OnceValue(func() int { return runtime.GOMAXPROCS(0) })

// Reserve makes room for n more threads in system calls: GOMAXPROCS
// becomes at least the host's own count plus n. It never lowers it, since
// several machines may share a process (tests).
func Reserve(n int) {
	if want := host() + n; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
