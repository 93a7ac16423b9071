// Package report writes benchmark results into docs/benchmarks.md: each
// suite owns the text between its <!-- NAME:begin --> and <!-- NAME:end -->
// markers and rewrites only that.
package report

import (
	"fmt"
	"os"
	"strings"
)

// Splice replaces suite name's section of the page at path with body.
func Splice(path, name, body string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: markers %s … %s not found", path, begin, end)
	}
	return os.WriteFile(path, []byte(s[:i+len(begin)]+"\n"+body+s[j:]), 0o644)
}
