// Command tzdata converts a fixed instant to named time zones: a guest has
// no /usr/share/zoneinfo, so the zones must come from the image (the mote
// API links time/tzdata).
package main

import (
	"fmt"
	"time"

	_ "github.com/moteos/mote/guest/mote"
)

func main() {
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	for _, name := range []string{"Europe/Paris", "America/New_York", "Asia/Tokyo"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			fmt.Println(name, "error:", err)
			continue
		}
		fmt.Println(name, at.In(loc).Format("15:04 MST"))
	}
}
