// Command nilderef dereferences nil pointers and recovers the panics, as
// net/http does for handlers: SIGSEGV must reach the Go runtime.
package main

import (
	"errors"
	"fmt"
	"runtime"
)

type T struct{ x [1 << 10]int }

func deref(p *T, i int) (v int, err error) {
	defer func() {
		if r := recover(); r != nil {
			var re runtime.Error
			if e, ok := r.(error); ok && errors.As(e, &re) {
				err = re
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	return p.x[i], nil
}

func main() {
	for i := 0; i < 3; i++ {
		_, err := deref(nil, i*100)
		fmt.Println("recovered:", err)
	}
	var m map[string]int
	func() {
		defer func() { fmt.Println("recovered:", recover()) }()
		m["x"] = 1
	}()
	fmt.Println("still running")
}
