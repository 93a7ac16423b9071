// Command httpd serves a small site and a JSON endpoint with net/http,
// listening through mote.Listen, and shuts down gracefully on SIGTERM or
// SIGINT. The same source runs as a host process (-t unix) and as a
// unikernel (-t hvt).
package main

import (
	"context"
	"embed"
	"encoding/json"
	"flag"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moteos/mote/guest/mote"
)

//go:embed site
var site embed.FS

var (
	started  = time.Now()
	requests atomic.Int64
)

type info struct {
	Service   string  `json:"service"`
	Target    string  `json:"target"`
	GoVersion string  `json:"go_version"`
	CPUs      int     `json:"cpus"`
	Uptime    float64 `json:"uptime_seconds"`
	Requests  int64   `json:"requests"`
}

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()
	log := mote.Logger()

	root, _ := fs.Sub(site, "site")
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(root))
	mux.HandleFunc("/api/info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info{
			Service: "httpd", Target: mote.Target(), GoVersion: runtime.Version(),
			CPUs: runtime.NumCPU(), Uptime: time.Since(started).Seconds(), Requests: requests.Load(),
		})
	})
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mux.ServeHTTP(w, r)
	})

	l, err := mote.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Info("serving", "addr", l.Addr().String())
	if err := srv.Serve(l); err != http.ErrServerClosed {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
	log.Info("shut down", "requests", requests.Load())
}
