// Command argsenv prints its arguments and the environment variables it
// was asked about.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	fmt.Println("argv0:", filepath.Base(os.Args[0]))
	fmt.Println("args:", os.Args[1:])
	for _, k := range []string{"MOTE_TEST_A", "MOTE_TEST_B", "MOTE_UNSET"} {
		v, ok := os.LookupEnv(k)
		fmt.Printf("%s=%q set=%v\n", k, v, ok)
	}
}
