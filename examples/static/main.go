// Command static serves a read-only file tree — on unix a directory, in a
// unikernel a tar image on a block device — with http.FileServer. Run it
// with mote run --fs site=DIR (or an image from mote mkimage).
package main

import (
	"flag"
	"net/http"
	"os"
	"time"

	"github.com/moteos/mote/guest/mote"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	tree := flag.String("fs", "site", "name of the file tree to serve")
	flag.Parse()
	log := mote.Logger()
	site, err := mote.FS(*tree)
	if err != nil {
		log.Error("file tree", "err", err)
		os.Exit(1)
	}
	l, err := mote.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	log.Info("serving", "tree", *tree, "addr", l.Addr().String())
	srv := &http.Server{Handler: http.FileServer(http.FS(site)), ReadHeaderTimeout: 10 * time.Second}
	log.Error("serve", "err", srv.Serve(l))
	os.Exit(1)
}
