// Package imagecache keeps a shared-memory copy of each image a tender
// boots, so that KVM can map the guest's code many pages per fault.
//
// Why: under nested virtualization (kvm-pvm here) every guest page the
// guest touches first costs a shadow page fault of about 10 µs, and a Go
// program touches about a thousand pages of its own file before main. KVM
// maps neighbouring pages along with the faulting one (up to 8) only when
// their host pages are present and writable. A private mapping of the
// image file never qualifies: its pages are read-only until copied on
// write. A shared mapping of a file in tmpfs does, and is still one copy
// for every instance of the image. Booting from it halves the page faults
// of an HTTP server's start (1850 → 890) and answers its first request
// ~9 ms sooner (docs/hvt.md).
//
// The copy is named after the image file's identity (device, inode, size,
// modification and change times), lives in a directory only its user can
// enter, and is made once under a lock, so that a thousand instances
// started at once copy the image once. The least recently used copies
// beyond a small number are removed; instances still running keep theirs
// mapped. The tender maps the copy's read-only segments shared and its
// writable segment privately, and the guest can never write the shared
// pages: they are mapped read-only in its page tables, and mmap, mprotect,
// munmap and madvise refuse image addresses.
package imagecache
