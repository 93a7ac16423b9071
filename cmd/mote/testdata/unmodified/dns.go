package main

import (
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// serveDNS answers A queries for example.test. with dns.ListenAndServe,
// on UDP and TCP at addr, as a DNS server written for Linux does.
func serveDNS(addr string) {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) == 1 && q.Question[0].Name == "example.test." && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, 1),
			})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	for _, proto := range []string{"udp", "tcp"} {
		go func() {
			if err := dns.ListenAndServe(addr, proto, h); err != nil {
				fmt.Println("dns.ListenAndServe", proto+":", err)
			}
		}()
	}
}

// askDNS queries the server at addr over proto, retrying while it starts.
func askDNS(proto, addr string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeA)
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	var err error
	for try := 0; try < 10; try++ {
		var r *dns.Msg
		if r, _, err = c.Exchange(m, addr); err == nil {
			if len(r.Answer) != 1 {
				return "", fmt.Errorf("answer %v", r)
			}
			return r.Answer[0].(*dns.A).A.String(), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", err
}
