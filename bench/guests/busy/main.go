// Command busy computes and allocates for the number of seconds in its
// first argument, keeping the collector and the scheduler at work.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	secs, _ := strconv.Atoi(os.Args[1])
	end := time.Now().Add(time.Duration(secs) * time.Second)
	var sum [32]byte
	n := 0
	for time.Now().Before(end) {
		b := make([]byte, 4096+n%8192)
		b[0] = sum[0]
		sum = sha256.Sum256(b)
		n++
	}
	fmt.Println("iterations:", n > 0)
}
