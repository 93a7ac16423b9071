package mote

import (
	_ "time/tzdata" // time.LoadLocation without /usr/share/zoneinfo

	_ "golang.org/x/crypto/x509roots/fallback" // TLS clients verify without /etc/ssl
)
