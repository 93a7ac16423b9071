// Package procs keeps Go's scheduler working in a process whose threads
// live in system calls: a tender's vCPUs in KVM_RUN, device threads and
// pollers in poll. Go counts a thread in a system call as holding its P
// until sysmon takes the P back, which in an otherwise idle process it
// does only every 10 ms; with GOMAXPROCS at the host's CPU count such
// threads can hold every P, and the process's other goroutines — the user
// network's stack above all — then wait for sysmon: a published port's
// first TCP handshake took up to 19 ms instead of 50 µs (docs/hvt.md).
package procs
