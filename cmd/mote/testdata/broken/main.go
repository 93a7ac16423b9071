// Package main does not compile, on purpose: mote build must show Go's
// own error.
package main

func main() {
	undefinedFunction()
}
