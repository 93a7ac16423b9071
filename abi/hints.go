package abi

import (
	"sort"
	"strings"
)

// hints say what to do about a call outside the ABI that programs make
// for a reason a user can act on, by the call's name.
var hints = map[string]string{}

func init() {
	for hint, calls := range map[string][]string{
		"the program opened a socket of the host's kind: build it with mote build or mote run PKG, which put its net package on the guest's own network stack, and give it --net user or --net tap (a go test binary gets the same from mote test)": {
			"socket", "socketpair", "connect", "bind", "listen", "accept", "accept4"},
		"the program started another one (os/exec, fork): a unikernel runs one program and starts none": {
			"clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid", "pidfd_open"},
		"the program made a FIFO or a device node (mkfifo, mknod): the guest's file tree has none": {
			"mknod", "mknodat"},
	} {
		for _, c := range calls {
			hints[c] = hint
		}
	}
}

// Hints returns what to do about the calls outside the ABI a guest made,
// given as the reports at exit name them ("socket (nr 41) ×2"): one line
// per kind of call that has a remedy, in a fixed order.
func Hints(calls []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range calls {
		name, _, _ := strings.Cut(c, " ")
		if h := hints[name]; h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}
