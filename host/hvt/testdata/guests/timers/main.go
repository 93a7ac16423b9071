// Command timers exercises time.Sleep, tickers, timers and timeouts and
// checks the clock moves forward at the right rate.
package main

import (
	"context"
	"fmt"
	"time"
)

func main() {
	start := time.Now()
	time.Sleep(30 * time.Millisecond)
	slept := time.Since(start)
	fmt.Println("sleep at least 30ms:", slept >= 30*time.Millisecond, "under 2s:", slept < 2*time.Second)

	tk := time.NewTicker(5 * time.Millisecond)
	for i := 0; i < 10; i++ {
		<-tk.C
	}
	tk.Stop()
	fmt.Println("10 ticks after 50ms:", time.Since(start) >= 80*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	<-ctx.Done()
	fmt.Println("context:", ctx.Err())

	fired := make(chan bool)
	time.AfterFunc(10*time.Millisecond, func() { fired <- true })
	fmt.Println("AfterFunc fired:", <-fired)

	wall := time.Now()
	fmt.Println("wall clock after 2020:", wall.Year() > 2020)
	fmt.Println("monotonic advances:", time.Since(start) > 0)
}
