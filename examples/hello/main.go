// Command hello is the smallest Mote application: it greets, names the
// target it runs on, and exits with the status given by -exit.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moteos/mote/guest/mote"
)

func main() {
	status := flag.Int("exit", 0, "exit status")
	flag.Parse()
	fmt.Printf("hello from mote (target %s)\n", mote.Target())
	os.Exit(*status)
}
