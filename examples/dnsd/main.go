// Command dnsd is an authoritative DNS server for one zone, built with
// github.com/miekg/dns and serving UDP and TCP through mote.ListenPacket
// and mote.Listen.
package main

import (
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"

	"github.com/moteos/mote/guest/mote"
)

// zone is the data served, in master-file format.
const zone = `$ORIGIN example.mote.
$TTL 300
@	IN SOA	ns1.example.mote. hostmaster.example.mote. 2026112201 7200 3600 1209600 300
@	IN NS	ns1.example.mote.
@	IN A	192.0.2.10
@	IN AAAA	2001:db8::10
@	IN MX	10 mail.example.mote.
@	IN TXT	"served by a Mote unikernel"
ns1	IN A	192.0.2.53
www	IN CNAME	@
mail	IN A	192.0.2.25
`

const origin = "example.mote."

func load() (map[string][]dns.RR, error) {
	records := map[string][]dns.RR{}
	zp := dns.NewZoneParser(strings.NewReader(zone), origin, "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		records[name] = append(records[name], rr)
	}
	return records, zp.Err()
}

func main() {
	addr := flag.String("addr", ":5353", "address to serve on (UDP and TCP)")
	flag.Parse()
	log := mote.Logger()
	records, err := load()
	if err != nil {
		log.Error("zone", "err", err)
		os.Exit(1)
	}
	soa := records[origin][0]

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		if !dns.IsSubDomain(origin, name) {
			m.Rcode = dns.RcodeRefused
			m.Authoritative = false
			w.WriteMsg(m)
			return
		}
		rrs, found := records[name]
		for hops := 0; hops < 8; hops++ { // follow in-zone CNAMEs, boundedly
			var next string
			for _, rr := range rrs {
				t := rr.Header().Rrtype
				if t == q.Qtype || q.Qtype == dns.TypeANY {
					m.Answer = append(m.Answer, rr)
				} else if cn, ok := rr.(*dns.CNAME); ok {
					m.Answer = append(m.Answer, rr)
					next = strings.ToLower(cn.Target)
				}
			}
			if next == "" || q.Qtype == dns.TypeCNAME {
				break
			}
			rrs = records[next]
		}
		if !found {
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			m.Ns = append(m.Ns, soa)
		}
		w.WriteMsg(m)
	})

	pc, err := mote.ListenPacket("udp", *addr)
	if err != nil {
		log.Error("listen udp", "addr", *addr, "err", err)
		os.Exit(1)
	}
	l, err := mote.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen tcp", "addr", *addr, "err", err)
		os.Exit(1)
	}
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: l, Handler: handler}
	errs := make(chan error, 2)
	go func() { errs <- udp.ActivateAndServe() }()
	go func() { errs <- tcp.ActivateAndServe() }()
	log.Info("serving", "zone", origin, "udp", pc.LocalAddr().String(), "tcp", l.Addr().String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		udp.Shutdown()
		tcp.Shutdown()
		log.Info("shut down")
	case err := <-errs:
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
