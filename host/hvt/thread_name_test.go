package hvt

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A vCPU's or device's host thread is named after mote and what it runs;
// the main thread keeps the process's name, which ps and pgrep -x show
// (an instance showed as vcpu:t1 before).
func TestThreadNames(t *testing.T) {
	comm := func(tid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
		return strings.TrimSpace(string(b))
	}
	before := comm(unix.Getpid())
	var named func() string
	named = func() string {
		runtime.LockOSThread() // the thread ends with the goroutine
		if unix.Gettid() == unix.Getpid() {
			nameThread("vcpu:t1") // must leave it alone
			// Holding the main thread, ask again: another thread now.
			done := make(chan string)
			go func() { done <- named() }()
			return <-done
		}
		nameThread("vcpu:t12345")
		return comm(unix.Gettid())
	}
	done := make(chan string)
	go func() { done <- named() }()
	if got := <-done; got != "mote:vcpu:t1234" { // 15 bytes at most
		t.Errorf("a vCPU thread's name: %q", got)
	}
	if got := comm(unix.Getpid()); got != before {
		t.Errorf("the main thread's name changed: %q, was %q", got, before)
	}
}
