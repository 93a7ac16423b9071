// Package stdnet connects the standard library's net package to the
// unikernel's own TCP/IP stack (guest/netstack), so that a program that
// never heard of Mote — http.ListenAndServe, net.Dial inside a database
// driver, net.ListenPacket in a DNS server — runs unchanged on hvt and spt
// and keeps the standard types (*net.TCPConn, *net.UDPConn,
// *net.TCPListener).
//
// mote build adds two things to such a program, without touching its files
// or its go.mod (host/inject): an import of this package, and an overlay of
// a few of the net package's files that gives net a hook where it creates
// an internet socket. This package installs the hook at init, and only in
// a unikernel: under the unix target the program's sockets stay the
// host's. Behind the hook, a socket is a netstack endpoint served in the
// guest itself, with no system call per operation, as TamaGo routes its
// net package through its own stack.
//
// What the hook does not serve keeps Go's own path and gets the Mote ABI's
// answer: Unix-domain and raw sockets, and the raw descriptor of a
// connection (SyscallConn, File), which a connection in the guest's stack
// does not have.
package stdnet
