// Package report writes benchmark results into docs/benchmarks.md: each
// suite owns the text between its <!-- NAME:begin --> and <!-- NAME:end -->
// markers and rewrites only that.
package report

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
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

// Machine describes this machine for a results page: CPUs, kernel, the
// kind of KVM, Go.
func Machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	var u unix.Utsname
	unix.Uname(&u)
	kvm := "KVM"
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		kvm = "kvm-pvm (nested, software-assisted)"
	}
	return fmt.Sprintf("%d× %s, Linux %s, %s, %s", runtime.NumCPU(), model, unix.ByteSliceToString(u.Release[:]), kvm, runtime.Version())
}

// Median is the middle of v (the mean of the two middle values for an even
// count); v is left as it was.
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
