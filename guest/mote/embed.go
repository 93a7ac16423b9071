package mote

import (
	"crypto/x509"
	"sync"

	_ "time/tzdata" // time.LoadLocation without /usr/share/zoneinfo

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

var rootsOnce sync.Once

// InstallRoots gives crypto/x509 the Mozilla CA roots, for TLS clients in
// a unikernel, which has no /etc/ssl. It runs at the program's first
// outbound connection, not at start nor when it listens: parsing the bundle
// costs ~3 ms of a unikernel's boot and ~0.7 MB of heap, which a server
// that never dials out should not pay. guest/stdnet calls it at a program's
// first dial through net.
func InstallRoots() {
	rootsOnce.Do(func() {
		p := x509.NewCertPool()
		for c := range bundle.Roots() {
			cert, err := x509.ParseCertificate(c.Certificate)
			if err != nil {
				continue
			}
			if c.Constraint == nil {
				p.AddCert(cert)
			} else {
				p.AddCertWithConstraint(cert, c.Constraint)
			}
		}
		x509.SetFallbackRoots(p)
	})
}
