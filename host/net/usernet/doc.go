// Package usernet is the `--net user` backend: a network for one guest
// that needs no privileges, in the manner of QEMU's user networking. The
// guest's NIC is one end of a SOCK_SEQPACKET socket pair; on the other end
// a gVisor netstack in the tender plays the rest of the network:
//
//   - the gateway (10.0.2.2), which is also the host: connections to it
//     reach the host's loopback;
//   - a DNS server (10.0.2.3), which relays queries to the host's resolver;
//   - outbound NAT: every other TCP connection or UDP flow the guest opens
//     is carried on by a host socket (netstack's forwarders, not a
//     hand-written NAT), at most 1024 of each at once, so that a guest
//     cannot take the tender's descriptors and memory;
//   - published ports: a host listener (-p 127.0.0.1:8080:80) whose
//     connections are dialled into the guest, again at most 1024
//     connections and 1024 UDP clients at once, so that host clients
//     cannot either.
//
// The guest is 10.0.2.15/24; its configuration reaches it in the manifest,
// so it needs no DHCP. The network's stack and listeners start on their
// own thread while the tender makes the machine, and the guest starts
// when they are ready (Network.Ready).
package usernet
