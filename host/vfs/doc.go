// Package vfs is the file tree a guest sees, served from the host side on
// hvt (the tender) and spt (the seccomp supervisor), so that an unmodified
// program's os.Open, os.ReadFile and os.Stat work in a unikernel:
//
//   - host directories mounted at guest paths (mote run -v SRC:/PATH[:ro]).
//     Symbolic links are followed in the guest's namespace, as in a
//     container, by the tree itself; the kernel looks at each element
//     beneath its mount's root with openat2(RESOLVE_BENEATH |
//     RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS), so no "..", link or rename
//     race leads outside the guest's tree;
//   - a read-only mount refuses writes with EROFS before the host sees them;
//   - the files a process expects in /etc, made from the run's settings:
//     hosts (localhost), resolv.conf (the guest network's DNS), passwd and
//     group (one user, the one who ran mote), hostname, and
//     /proc/sys/kernel/hostname (which os.Hostname reads);
//   - /dev/null, /dev/zero, /dev/random and /dev/urandom, the host's own,
//     which hold nothing of the host's.
//
// Every open gives a host descriptor (a mounted file, or a sealed memfd
// for a made file): the tender serves reads and writes on it, and the spt
// supervisor installs it in the guest. Paths are guest paths, walked as
// Linux walks them ("link/.." is the parent of the link's target, "file/"
// is ENOTDIR) before a mount is chosen.
package vfs
