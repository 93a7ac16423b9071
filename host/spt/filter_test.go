package spt

import (
	"testing"
)

// The filter assembles for a policy with devices, stays small, and the
// unconditional allowlist stays near the ABI's size.
func TestFilterBuilds(t *testing.T) {
	f, err := Build(Policy{Pid: 42, Blocks: []BlockFD{{FD: 4, Size: 1 << 20, Sector: 512}, {FD: 5, Size: 8 << 30, Sector: 4096, ReadOnly: true}}, ImageFD: 14, NotifySock: 15})
	if err != nil {
		t.Fatal(err)
	}
	if len(f) > 400 {
		t.Errorf("filter has %d instructions", len(f))
	}
	conditional := 14 // read, write, pread64, pwrite64, mmap, mprotect, clone, arch_prctl, tgkill, kill, sendmsg, execveat + lookups answered ENOENT/EINVAL
	if n := len(Allowed) + conditional; n > 45 {
		t.Errorf("%d system calls allowed", n)
	}
	for nr, why := range Allowed {
		if why == "" {
			t.Errorf("syscall %d has no reason", nr)
		}
	}
}
