package inject

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// netMote is the file added to package net; its build constraint keeps it
// out of this package and is dropped in the overlay.
//
//go:embed net_mote.go
var netMote string

// loopMote is the loopback network for a program without guest/stdnet,
// added to package net beside net_mote.go.
//
//go:embed loop_mote.go
var loopMote string

// edit is one change to a file of package net: after the first line
// starting with at, insert (a statement at the top of a function, or a
// field), or, with replace set, every at replaced by it.
type edit struct {
	file    string
	at      string
	insert  string
	replace string
}

// netEdits route a netFD whose socket is the guest stack's (fd.ext set)
// to net_mote.go, and leave every other netFD on net's own path.
var netEdits = []edit{
	{file: "fd_posix.go", at: "type netFD struct {", insert: "\t// ext is the guest stack's socket behind this netFD in a Mote\n\t// unikernel (mote_net.go), nil for a descriptor.\n\text any\n"},
	{file: "fd_unix.go", at: "func (fd *netFD) accept() (netfd *netFD, err error) {", insert: "if fd.ext != nil { return fd.moteAccept() }"},
	{file: "fd_unix.go", at: "func (fd *netFD) dup() (f *os.File, err error) {", insert: `if fd.ext != nil { return nil, wrapSyscallError("dup", syscall.EOPNOTSUPP) }`},
	{file: "fd_posix.go", at: "func (fd *netFD) Close() error {", insert: "if fd.ext != nil { runtime.SetFinalizer(fd, nil); return fd.moteClose() }"},
	{file: "fd_posix.go", at: "func (fd *netFD) shutdown(how int) error {", insert: "if fd.ext != nil { return fd.moteShutdown(how) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) Read(p []byte) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteRead(p) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readFrom(p []byte) (n int, sa syscall.Sockaddr, err error) {", insert: "if fd.ext != nil { return fd.moteReadFrom(p) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readFromInet4(p []byte, from *syscall.SockaddrInet4) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteReadFromInet4(p, from) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readFromInet6(p []byte, from *syscall.SockaddrInet6) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteReadFromInet6(p, from) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readMsg(p []byte, oob []byte, flags int) (n, oobn, retflags int, sa syscall.Sockaddr, err error) {", insert: "if fd.ext != nil { return fd.moteReadMsg(p) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readMsgInet4(p []byte, oob []byte, flags int, sa *syscall.SockaddrInet4) (n, oobn, retflags int, err error) {", insert: "if fd.ext != nil { return fd.moteReadMsgInet4(p, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) readMsgInet6(p []byte, oob []byte, flags int, sa *syscall.SockaddrInet6) (n, oobn, retflags int, err error) {", insert: "if fd.ext != nil { return fd.moteReadMsgInet6(p, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) Write(p []byte) (nn int, err error) {", insert: "if fd.ext != nil { return fd.moteWrite(p) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeTo(p []byte, sa syscall.Sockaddr) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteTo(p, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeToInet4(p []byte, sa *syscall.SockaddrInet4) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteToInet4(p, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeToInet6(p []byte, sa *syscall.SockaddrInet6) (n int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteToInet6(p, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeMsg(p []byte, oob []byte, sa syscall.Sockaddr) (n int, oobn int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteMsg(p, oob, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeMsgInet4(p []byte, oob []byte, sa *syscall.SockaddrInet4) (n int, oobn int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteMsgInet4(p, oob, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) writeMsgInet6(p []byte, oob []byte, sa *syscall.SockaddrInet6) (n int, oobn int, err error) {", insert: "if fd.ext != nil { return fd.moteWriteMsgInet6(p, oob, sa) }"},
	{file: "fd_posix.go", at: "func (fd *netFD) SetDeadline(t time.Time) error {", insert: `if fd.ext != nil { return fd.moteSetDeadline(t, "rw") }`},
	{file: "fd_posix.go", at: "func (fd *netFD) SetReadDeadline(t time.Time) error {", insert: `if fd.ext != nil { return fd.moteSetDeadline(t, "r") }`},
	{file: "fd_posix.go", at: "func (fd *netFD) SetWriteDeadline(t time.Time) error {", insert: `if fd.ext != nil { return fd.moteSetDeadline(t, "w") }`},
	{file: "sock_posix.go", at: "func socket(ctx context.Context, net string, family, sotype, proto int, ipv6only bool, laddr, raddr sockaddr, ctrlCtxFn func(context.Context, string, string, syscall.RawConn) error) (fd *netFD, err error) {",
		insert: "if fd, err, ok := moteSocketFD(ctx, net, family, sotype, proto, ipv6only, laddr, raddr); ok { return fd, err }"},
	// The guest's stack has IPv4, IPv6 and IPv4-mapped addresses, and no
	// Multipath TCP: net need not probe with sockets of its own.
	{file: "ipsock_posix.go", at: "func (p *ipStackCapabilities) probe() {", insert: "if moteHasStack() { p.ipv4Enabled, p.ipv6Enabled, p.ipv4MappedIPv6Enabled = true, true, true; return }"},
	{file: "mptcpsock_linux.go", at: "func initMPTCPavailable() {", insert: "if moteHasStack() { return }"},
	// The interfaces are the guest stack's, not netlink's (refused).
	{file: "interface_linux.go", at: "func interfaceTable(ifindex int) ([]Interface, error) {", insert: "if moteHasStack() { return moteInterfaceTable(ifindex) }"},
	{file: "interface_linux.go", at: "func interfaceAddrTable(ifi *Interface) ([]Addr, error) {", insert: "if moteHasStack() { return moteInterfaceAddrTable(ifi) }"},
	{file: "interface_linux.go", at: "func interfaceMulticastAddrTable(ifi *Interface) ([]Addr, error) {", insert: "if moteHasStack() { return nil, nil }"},
	{file: "writev_unix.go", at: "func (fd *netFD) writeBuffers(v *Buffers) (n int64, err error) {", insert: "if fd.ext != nil { return fd.moteWriteBuffers(v) }"},
	{file: "splice_linux.go", at: "func spliceFrom(c *netFD, r io.Reader) (written int64, err error, handled bool) {", insert: "if c.ext != nil { return 0, nil, false }"},
	{file: "splice_linux.go", at: "func spliceTo(w io.Writer, c *netFD) (written int64, err error, handled bool) {", insert: "if c.ext != nil { return 0, nil, false }"},
	{file: "sendfile.go", at: "func sendFile(c *netFD, r io.Reader) (written int64, err error, handled bool) {", insert: "if c.ext != nil { return 0, nil, false }"},
	{file: "sockopt_posix.go", at: "fd.pfd.SetsockoptInt(", replace: "fd.setsockoptInt("},
	{file: "sockopt_posix.go", at: "fd.pfd.SetsockoptLinger(", replace: "fd.setsockoptLinger("},
	{file: "tcpsockopt_posix.go", at: "fd.pfd.SetsockoptInt(", replace: "fd.setsockoptInt("},
	{file: "tcpsockopt_unix.go", at: "fd.pfd.SetsockoptInt(", replace: "fd.setsockoptInt("},
	{file: "sockoptip4_linux.go", at: "fd.pfd.SetsockoptInt(", replace: "fd.setsockoptInt("},
	{file: "sockoptip4_linux.go", at: "fd.pfd.SetsockoptIPMreqn(", replace: "fd.setsockoptIPMreqn("},
	{file: "sockoptip6_posix.go", at: "fd.pfd.SetsockoptInt(", replace: "fd.setsockoptInt("},
	{file: "sockoptip6_posix.go", at: "fd.pfd.SetsockoptIPv6Mreq(", replace: "fd.setsockoptIPv6Mreq("},
	{file: "rawconn.go", at: "c.fd.pfd.RawControl(", replace: "c.fd.rawControl("},
	{file: "rawconn.go", at: "c.fd.pfd.RawRead(", replace: "c.fd.rawRead("},
	{file: "rawconn.go", at: "c.fd.pfd.RawWrite(", replace: "c.fd.rawWrite("},
}

// netOverlay writes the edited files of goroot's package net, and
// mote_net.go, into dir and returns the overlay's replacements: each
// path in goroot's net directory to the file that stands in for it.
func netOverlay(goroot, dir string) (map[string]string, error) {
	src := filepath.Join(goroot, "src", "net")
	files := map[string]string{}
	var order []string
	for _, e := range netEdits {
		text, ok := files[e.file]
		if !ok {
			b, err := os.ReadFile(filepath.Join(src, e.file))
			if err != nil {
				return nil, fmt.Errorf("the toolchain's net package: %w", err)
			}
			text = string(b)
			order = append(order, e.file)
		}
		out, err := e.apply(text)
		if err != nil {
			return nil, fmt.Errorf("this Go toolchain's net/%s is not one Mote can adapt (%v); Mote supports the Go release it is built with", e.file, err)
		}
		files[e.file] = out
	}
	files["mote_net.go"] = strings.Replace(netMote, "//go:build ignore\n", "", 1)
	files["mote_loop.go"] = strings.Replace(loopMote, "//go:build ignore\n", "", 1)
	order = append(order, "mote_net.go", "mote_loop.go")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	replace := map[string]string{}
	for _, name := range order {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return nil, err
		}
		replace[filepath.Join(src, name)] = p
	}
	return replace, nil
}

// apply makes the edit in text.
func (e edit) apply(text string) (string, error) {
	if e.replace != "" {
		if !strings.Contains(text, e.at) {
			return "", fmt.Errorf("no %q", e.at)
		}
		return strings.ReplaceAll(text, e.at, e.replace), nil
	}
	i := strings.Index(text, "\n"+e.at)
	if i < 0 {
		return "", fmt.Errorf("no line %q", e.at)
	}
	eol := strings.IndexByte(text[i+1:], '\n')
	if eol < 0 {
		return "", fmt.Errorf("line %q ends the file", e.at)
	}
	end := i + 1 + eol + 1
	ins := e.insert
	if !strings.HasSuffix(ins, "\n") {
		ins = "\t" + ins + "\n"
	}
	return text[:end] + ins + text[end:], nil
}
