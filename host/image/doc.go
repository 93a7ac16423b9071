// Package image opens and validates a unikernel image: a static
// linux/amd64 Go executable. Everything a tender needs from the file — the
// loadable segments, the entry point, the Go build settings and the symbol
// table used to symbolize guest backtraces — is checked and extracted here,
// before any VM or process exists, so a malformed, truncated, dynamic,
// foreign or non-Go file is refused with a precise message.
package image
