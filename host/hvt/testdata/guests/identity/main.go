// Command identity prints the user and group ids the guest has: on hvt
// and spt, those of the user who ran mote, as natively.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("uid", os.Getuid(), "euid", os.Geteuid(), "gid", os.Getgid(), "egid", os.Getegid())
}
