// Command idle prints "ready" and then waits, doing nothing, until it gets
// SIGTERM or SIGINT: a parked service.
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
	<-c
}
