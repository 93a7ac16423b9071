// Command blockio measures the block device "disk": sequential reads in
// 1 MiB requests, then 4 KiB random reads and writes, printing
// "name value unit" lines.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"time"

	"github.com/moteos/mote/guest/mote"
)

func main() {
	dev, err := mote.OpenBlock("disk")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	var n int64
	for off := int64(0); off+int64(len(buf)) <= dev.Size(); off += int64(len(buf)) {
		k, err := dev.ReadAt(buf, off)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n += int64(k)
	}
	fmt.Printf("seq-read %.1f MB/s\n", float64(n)/time.Since(start).Seconds()/1e6)

	page := make([]byte, 4096)
	blocks := dev.Size() / 4096
	for _, op := range []string{"rand-read-4k", "rand-write-4k"} {
		start, ops := time.Now(), 0
		for time.Since(start) < 2*time.Second {
			off := rand.Int63n(blocks) * 4096
			if op == "rand-read-4k" {
				dev.ReadAt(page, off)
			} else {
				dev.WriteAt(page, off)
			}
			ops++
		}
		fmt.Printf("%s %.0f IOPS\n", op, float64(ops)/time.Since(start).Seconds())
	}
	start = time.Now()
	for i := 0; i < 50; i++ {
		dev.WriteAt(page, rand.Int63n(blocks)*4096)
		dev.Sync()
	}
	fmt.Printf("write+sync-4k %.0f per second\n", 50/time.Since(start).Seconds())
}
