// Command gcstress allocates far more memory over its life than the guest
// has, keeping a bounded live set, and checks the live data survives.
package main

import (
	"fmt"
	"runtime"
)

type node struct {
	next *node
	buf  []byte
	id   int
}

func main() {
	var keep [64]*node
	for i := 0; i < 200000; i++ {
		n := &node{buf: make([]byte, 2048+i%4096), id: i}
		n.buf[0] = byte(i)
		n.next = keep[i%len(keep)]
		if (i/len(keep))%16 == 0 { // chains of at most 16 nodes
			n.next = nil
		}
		keep[i%len(keep)] = n
	}
	for i, n := range keep {
		for d := 0; n != nil; n, d = n.next, d+1 {
			if n.buf[0] != byte(n.id) || n.id%len(keep) != i {
				panic("corrupt live data")
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Println("allocated more than 400 MiB:", ms.TotalAlloc > 400<<20, "GCs ran:", ms.NumGC > 5)
}
