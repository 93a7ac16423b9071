// Command panic panics: the runtime prints the panic and exits 2.
package main

import "fmt"

func main() {
	fmt.Println("about to panic")
	panic("deliberate panic from a Mote guest")
}
