// Package netstack is the unikernel's TCP/IP stack: gVisor's netstack,
// run inside the guest over the NIC descriptors the tender provides, each a
// descriptor whose reads and writes are whole Ethernet frames. It answers
// ARP and ICMP echo, speaks IPv4 with the addresses in the manifest (and
// IPv6 link-local), and offers TCP and UDP through the standard net
// interfaces (net.Listener, net.Conn, net.PacketConn) and a *net.Resolver
// that queries the configured DNS servers over the same stack, so net/http,
// crypto/tls and miekg/dns run on it unchanged.
//
// Guest memory is small, so the stack's buffers are capped (Options). Under
// the stack, each NIC's link delays pure ACKs briefly so that the reply
// that follows carries them, as Linux's delayed ACK does (acks.go): for
// request-response traffic that halves the frames the guest sends.
package netstack
