// Command nethttp serves HTTP on the guest's first NIC through the
// in-guest netstack, reading its devices from the manifest.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/guest/netstack"
)

func main() {
	man, err := abi.Parse([]byte(os.Getenv(abi.EnvManifest)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, err := netstack.New(man.Net, netstack.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := st.Listen("tcp", ":80")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "guest says hello to %s", r.URL.Path)
	})
	http.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "bye")
		go func() { os.Exit(0) }()
	})
	fmt.Println("serving")
	http.Serve(l, nil)
}
