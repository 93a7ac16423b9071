// Package vdso builds the synthetic vDSO a tender maps into every guest: a
// one-page ELF shared object exporting __vdso_clock_gettime,
// __vdso_gettimeofday and __vdso_time (version LINUX_2.6), as Linux's
// does, followed by a data page through which the tender publishes the
// TSC-to-nanoseconds conversion. The Go runtime finds it through the
// AT_SYSINFO_EHDR auxiliary vector entry and then reads the clock without
// a system call, which on a KVM guest would cost an exit per read.
package vdso
