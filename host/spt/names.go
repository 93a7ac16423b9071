package spt

import "fmt"

// sysName names a call for reports (the common ones a guest might try).
func sysName(nr int32) string {
	if n, ok := names[nr]; ok {
		return n
	}
	return fmt.Sprintf("syscall %d", nr)
}

var names = map[int32]string{
	2: "open", 41: "socket", 42: "connect", 43: "accept", 49: "bind", 50: "listen",
	56: "clone", 57: "fork", 58: "vfork", 59: "execve", 62: "kill", 101: "ptrace",
	165: "mount", 257: "openat", 322: "execveat", 319: "memfd_create", 9: "mmap",
	10: "mprotect", 0: "read", 1: "write", 17: "pread64", 18: "pwrite64", 16: "ioctl",
	234: "tgkill", 158: "arch_prctl", 46: "sendmsg", 47: "recvmsg", 435: "clone3",
}
