// Command roots counts crypto/x509's system roots before and after its
// first outbound connection: a unikernel has no /etc/ssl, and the mote API
// installs the image's CA roots at that connection, not at start.
package main

import (
	"crypto/x509"
	"fmt"

	"github.com/moteos/mote/guest/mote"
)

func roots() int {
	p, err := x509.SystemCertPool()
	if err != nil {
		return -1
	}
	return len(p.Subjects()) //lint:ignore SA1019 a count is all that is asked
}

func main() {
	fmt.Println("before the first dial:", roots())
	// Nothing listens there; the attempt is what installs the roots.
	if c, err := mote.Dial("tcp", "10.0.2.2:9"); err == nil {
		c.Close()
	}
	fmt.Println("after it, more than 100:", roots() > 100)
}
