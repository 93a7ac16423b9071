// Command cryptorand reads the guest's entropy and hashes deterministic
// data with SHA-256.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

func main() {
	a, b := make([]byte, 64), make([]byte, 64)
	if _, err := rand.Read(a); err != nil {
		panic(err)
	}
	rand.Read(b)
	fmt.Println("random reads differ:", !bytes.Equal(a, b))
	fmt.Printf("sha256(mote) = %x\n", sha256.Sum256([]byte("mote")))
	h := sha256.New()
	for i := 0; i < 100000; i++ {
		h.Write([]byte("the quick brown fox"))
	}
	fmt.Printf("sha256(stream) = %x\n", h.Sum(nil))
}
