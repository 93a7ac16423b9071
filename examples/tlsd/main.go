// Command tlsd serves HTTPS with crypto/tls, using a self-signed
// certificate it generates at start (for the names in -host), over
// mote.Listen: TLS runs inside the unikernel, unchanged.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/moteos/mote/guest/mote"
)

func selfSigned(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Mote tlsd"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	addr := flag.String("addr", ":8443", "address to listen on")
	hosts := flag.String("host", "localhost,127.0.0.1", "comma-separated names and addresses for the certificate")
	flag.Parse()
	log := mote.Logger()
	cert, err := selfSigned(strings.Split(*hosts, ","))
	if err != nil {
		log.Error("certificate", "err", err)
		os.Exit(1)
	}
	l, err := mote.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	log.Info("serving TLS", "addr", l.Addr().String())
	err = http.Serve(tl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s from target %s\n", tlsVersion(r.TLS), mote.Target())
	}))
	log.Error("serve", "err", err)
	os.Exit(1)
}

func tlsVersion(s *tls.ConnectionState) string {
	if s == nil {
		return "plain HTTP"
	}
	return tls.VersionName(s.Version)
}
