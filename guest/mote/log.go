package mote

import (
	"log/slog"
	"os"
)

// Logger returns a structured logger writing text lines to the console
// (standard error), tagged with the target.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("target", Target())
}
