// Command graceful waits for SIGTERM or SIGINT and shuts down cleanly,
// as a service under an orchestrator does.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	s := <-c
	fmt.Println("got", s, "- shutting down")
	os.Exit(3)
}
