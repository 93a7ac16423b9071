// Command kv is a small HTTP key-value service whose data lives on a block
// device (mote run --block kv=FILE) in a crash-safe store: a PUT or DELETE
// is answered only once the change is durable.
//
//	PUT /kv/KEY      store the body (at most 1 MiB)   → 204
//	GET /kv/KEY      the value                        → 200, or 404
//	DELETE /kv/KEY   remove it                        → 204
//	GET /kv/?prefix= the keys, as a JSON list
package main

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/moteos/mote/guest/kv"
	"github.com/moteos/mote/guest/mote"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	device := flag.String("block", "kv", "name of the block device")
	flag.Parse()
	log := mote.Logger()
	dev, err := mote.OpenBlock(*device)
	if err != nil {
		log.Error("block device", "err", err)
		os.Exit(1)
	}
	store, err := kv.Open(dev)
	if err != nil {
		log.Error("store", "err", err)
		os.Exit(1)
	}
	log.Info("store open", "keys", store.Len(), "device", dev.Name(), "bytes", dev.Size())

	http.HandleFunc("/kv/", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/kv/")
		switch {
		case key == "" && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(store.List(r.URL.Query().Get("prefix")))
		case key == "":
			http.Error(w, "no key", http.StatusBadRequest)
		case r.Method == http.MethodGet:
			v, ok, err := store.Get(key)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			} else if !ok {
				http.NotFound(w, r)
			} else {
				w.Write(v)
			}
		case r.Method == http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, kv.MaxValue+1))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := store.Put(key, body); err != nil {
				http.Error(w, err.Error(), http.StatusInsufficientStorage)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			if err := store.Delete(key); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	l, err := mote.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	log.Error("serve", "err", srv.Serve(l))
	os.Exit(1)
}
