// Package probe tells a benchmark when a server it started is serving. It
// asks for an HTTP answer rather than a connection: a published port (Mote's
// user networking, QEMU's hostfwd) accepts connections before the guest
// behind it serves.
package probe

import (
	"io"
	"net/http"
	"time"
)

var client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// HTTP asks GET url every interval, for at most limit, until an answer's
// status satisfies ok; it reports whether one did.
func HTTP(url string, limit, every time.Duration, ok func(status int) bool) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(every) {
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if ok(resp.StatusCode) {
			return true
		}
	}
	return false
}

// OK accepts 200 only; Any accepts every status.
func OK(status int) bool { return status == http.StatusOK }

// Any accepts every status: the server answered.
func Any(int) bool { return true }
