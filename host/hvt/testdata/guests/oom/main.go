// Command oom keeps allocating live memory until there is none left.
package main

import "fmt"

func main() {
	var keep [][]byte
	for i := 0; ; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(i)
		}
		keep = append(keep, b)
		if i%64 == 0 {
			fmt.Println("live MiB:", len(keep))
		}
	}
}
