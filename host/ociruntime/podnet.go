package ociruntime

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// tapName is the TAP device the runtime makes in a pod's namespace.
const tapName = "mote0"

// PodNet is a pod's network as CNI configured it, handed to the guest:
// the guest takes the pod interface's address, MAC and MTU, and a TAP
// device is joined to that interface by two tc mirred redirects, so
// frames pass between the guest and the pod's veth inside the kernel,
// with no copy by Mote. The kernel's own stack in the namespace sees none
// of the pod's traffic after that (nothing else runs there but runc's
// pause process).
type PodNet struct {
	NetNS   string   `json:"netns"`
	Link    string   `json:"link"` // the pod's interface, CNI's eth0
	Tap     string   `json:"tap"`
	Addr    string   `json:"addr"` // CIDR
	Gateway string   `json:"gateway,omitempty"`
	MAC     string   `json:"mac"`
	MTU     int      `json:"mtu"`
	DNS     []string `json:"dns,omitempty"`
}

// NIC is the guest's --net flag for the pod's network.
func (p *PodNet) NIC() string {
	s := "tap:" + p.Tap + ",addr=" + p.Addr + ",mac=" + p.MAC + fmt.Sprintf(",mtu=%d", p.MTU)
	if p.Gateway != "" {
		s += ",gw=" + p.Gateway
	}
	for _, d := range p.DNS {
		s += ",dns=" + d
	}
	return s
}

// podLink finds the namespace's interface with an IPv4 address: the one
// CNI set up. None is not an error (a namespace without a network).
func podLink(h *netlink.Handle) (netlink.Link, *netlink.Addr, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 || l.Attrs().Name == tapName {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range addrs {
			if a.Scope == unix.RT_SCOPE_UNIVERSE {
				return l, &a, nil
			}
		}
	}
	return nil, nil, nil
}

// setupPodNet joins a TAP to the pod's interface in the network
// namespace at nsPath, and returns what it made; nil when the namespace
// has no interface with an address. The calling thread must be in that
// namespace: a TAP is made in the namespace of whoever opens
// /dev/net/tun.
func setupPodNet(nsPath string, dns []string) (_ *PodNet, err error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	defer h.Close()
	link, addr, err := podLink(h)
	if err != nil || link == nil {
		return nil, err
	}
	la := link.Attrs()
	p := &PodNet{NetNS: nsPath, Link: la.Name, Tap: tapName, Addr: addr.IPNet.String(), MAC: la.HardwareAddr.String(), MTU: la.MTU, DNS: dns}
	if routes, err := h.RouteList(link, netlink.FAMILY_V4); err == nil {
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
				p.Gateway = r.Gw.String()
				break
			}
		}
	}
	if p.MTU < 576 || p.MTU > 9000 {
		return nil, fmt.Errorf("%s: MTU %d: the guest takes 576 to 9000", la.Name, p.MTU)
	}

	// The TAP, persistent so that mote can attach to it by name; its
	// flags are the ones mote attaches with (host/net/tap).
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: tapName, MTU: p.MTU}, Mode: netlink.TUNTAP_MODE_TAP,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE | netlink.TUNTAP_TUN_EXCL, NonPersist: false}
	if _, err := h.LinkByName(tapName); err == nil {
		return nil, fmt.Errorf("the pod's network is already another Mote container's (%s exists): a pod holds one Mote container", tapName)
	}
	if err := h.LinkAdd(tap); err != nil {
		return nil, fmt.Errorf("adding TAP %s: %w", tapName, err)
	}
	defer func() {
		if err != nil {
			p.Remove()
		}
	}()
	t, err := h.LinkByName(tapName)
	if err != nil {
		return nil, err
	}
	if err := h.LinkSetMTU(t, p.MTU); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(t); err != nil {
		return nil, err
	}
	if err := redirect(h, link, t); err != nil {
		return nil, fmt.Errorf("redirecting %s to %s: %w", la.Name, tapName, err)
	}
	if err := redirect(h, t, link); err != nil {
		return nil, fmt.Errorf("redirecting %s to %s: %w", tapName, la.Name, err)
	}
	return p, nil
}

// redirect sends every frame that arrives on from out of to, as
// tc filter add dev FROM ingress matchall action mirred egress redirect
// dev TO does.
func redirect(h *netlink.Handle, from, to netlink.Link) error {
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: from.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscAdd(ingress); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ingress qdisc: %w", err)
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: from.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs: netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN}, MirredAction: netlink.TCA_EGRESS_REDIR, Ifindex: to.Attrs().Index}},
	}
	if err := h.FilterAdd(f); err != nil {
		return fmt.Errorf("mirred filter: %w", err)
	}
	return nil
}

// Remove undoes setupPodNet: the TAP goes, and the ingress qdisc (with
// its filter) on the pod's interface. A namespace already gone took them
// with it. A nil PodNet has nothing to remove.
func (p *PodNet) Remove() error {
	if p == nil {
		return nil
	}
	ns, err := netns.GetFromPath(p.NetNS)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", p.NetNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", p.NetNS, err)
	}
	defer h.Close()
	var errs []string
	if l, err := h.LinkByName(p.Tap); err == nil {
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Sprintf("removing %s: %v", p.Tap, err))
		}
	}
	if l, err := h.LinkByName(p.Link); err == nil {
		ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := h.QdiscDel(ingress); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Sprintf("removing %s's ingress qdisc: %v", p.Link, err))
		}
	}
	if len(errs) > 0 {
		return errors.New("pod network: " + strings.Join(errs, "; "))
	}
	return nil
}
