// Package procstat reads what a running program costs the host from /proc:
// the memory (RSS, PSS) and CPU time of a process and all its descendants
// — a runsc sandbox or an spt guest is more than one process — and the
// machine's MemAvailable, which also sees kernel memory RSS does not
// (KVM's page tables, the page cache a VM's image fills).
package procstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Tree lists pid and its descendants.
func Tree(pid int) []int {
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields start
		// after the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(d))
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Memory is the resident and proportional set size of a process tree,
// in KiB.
func Memory(pid int) (rssKiB, pssKiB float64) {
	for _, p := range Tree(pid) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/smaps_rollup")
		rssKiB += field(b, "Rss:")
		pssKiB += field(b, "Pss:")
	}
	return
}

// CPUNanos is the CPU time a process tree has used (all threads, from
// schedstat: nanoseconds, where utime/stime tick at 10 ms).
func CPUNanos(pid int) int64 {
	var sum int64
	for _, p := range Tree(pid) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/*/schedstat")
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			if f := strings.Fields(string(b)); len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				sum += v
			}
		}
	}
	return sum
}

// MemAvailableKiB is the kernel's estimate of memory available for new
// work.
func MemAvailableKiB() float64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return field(b, "MemAvailable:")
}

// field reads "Key:   123 kB" from a /proc file.
func field(b []byte, key string) float64 {
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			if f := strings.Fields(line); len(f) > 1 {
				v, _ := strconv.ParseFloat(f[1], 64)
				return v
			}
		}
	}
	return 0
}
