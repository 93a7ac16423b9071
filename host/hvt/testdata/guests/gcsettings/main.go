// Command gcsettings prints the collector's settings the environment gave
// the Go runtime.
package main

import (
	"fmt"
	"runtime/debug"
)

func main() {
	fmt.Printf("GOGC=%d GOMEMLIMIT=%d\n", debug.SetGCPercent(-1), debug.SetMemoryLimit(-1))
}
