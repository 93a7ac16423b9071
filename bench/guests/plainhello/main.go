// Command plainhello is the plainest Go program: one fmt.Println.
package main

import "fmt"

func main() { fmt.Println("hello") }
