// Command hello prints a line and exits with the status in its first
// argument.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	fmt.Println("hello from a Mote guest")
	if len(os.Args) > 1 {
		n, _ := strconv.Atoi(os.Args[1])
		os.Exit(n)
	}
}
