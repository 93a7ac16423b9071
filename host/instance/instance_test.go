package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two creators racing for one name: exactly one wins.
func TestCreateRace(t *testing.T) {
	root := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Create(root, Spec{Name: "web", Target: "spt"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrExists):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 15 {
		t.Errorf("%d creators won, %d lost", won, lost)
	}
	for _, bad := range []string{"", "-x", "../x", "a/b", strings.Repeat("a", 64), "a b"} {
		if _, err := Create(root, Spec{Name: bad}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

// An instance is running exactly while its runner holds the lock: a
// runner killed with SIGKILL leaves a state file that says running, and
// the instance reads as dead, never as running.
func TestStateAfterKill(t *testing.T) {
	if os.Getenv("MOTE_INSTANCE_HELPER") != "" {
		in, err := Open(os.Getenv("MOTE_INSTANCE_ROOT"), "job")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		if _, err := in.Run(DefaultMaxLog); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("running")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	root := t.TempDir()
	if _, err := Create(root, Spec{Name: "job"}); err != nil {
		t.Fatal(err)
	}
	in, _ := Open(root, "job")
	if in.Status() != "created" {
		t.Errorf("new instance: %s", in.Status())
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestStateAfterKill$")
	cmd.Env = append(os.Environ(), "MOTE_INSTANCE_HELPER=1", "MOTE_INSTANCE_ROOT="+root)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, _ := out.Read(buf); string(buf[:n]) != "running\n" {
		t.Fatalf("helper said %q", buf[:n])
	}
	in, _ = Open(root, "job")
	if in.Status() != "running" || in.State.PID != cmd.Process.Pid {
		t.Errorf("while its runner lives: %s, pid %d (runner %d)", in.Status(), in.State.PID, cmd.Process.Pid)
	}
	if _, err := in.Run(DefaultMaxLog); err == nil {
		t.Error("a second runner took a running instance")
	}
	if err := in.Remove(); err == nil {
		t.Error("a running instance was removed")
	}
	cmd.Process.Kill()
	cmd.Wait()
	in, _ = Open(root, "job")
	if in.Status() != "dead" {
		t.Errorf("after kill -9 of its runner: %s", in.Status())
	}
	if err := in.Remove(); err != nil {
		t.Error(err)
	}
	if _, err := Open(root, "job"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after rm: %v", err)
	}
}

// The log keeps whole lines with their times, rotates at its bound (at
// most twice the bound on disk), cuts a line without end, and --since
// chooses by time.
func TestLog(t *testing.T) {
	dir := t.TempDir()
	in := &Instance{Dir: dir}
	l, err := OpenLog(filepath.Join(dir, LogFile), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(l, "one\ntw")
	fmt.Fprint(l, "o\n")
	mid := time.Now()
	fmt.Fprint(l, "three\n")
	var got bytes.Buffer
	in.ReadLog(context.Background(), &got, ReadOptions{})
	if got.String() != "one\ntwo\nthree\n" {
		t.Errorf("log: %q", got.String())
	}
	got.Reset()
	in.ReadLog(context.Background(), &got, ReadOptions{Since: mid})
	if got.String() != "three\n" {
		t.Errorf("since: %q", got.String())
	}
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(l, "line %d\n", i)
	}
	l.Write(bytes.Repeat([]byte("x"), 3*maxLine)) // no newline
	l.Close()
	total := int64(0)
	for _, f := range []string{LogFile, LogFile + ".1"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if total > 2*64<<10+maxLine+64 {
		t.Errorf("log files hold %d bytes, bound 2 × 64 KiB", total)
	}
	got.Reset()
	in.ReadLog(context.Background(), &got, ReadOptions{})
	if !strings.Contains(got.String(), "line 9999\n") || strings.Contains(got.String(), "line 1\n") {
		t.Errorf("after rotation: %d bytes, want the last lines only", got.Len())
	}
}

// Follow shows what is written while it reads and ends when the instance
// does.
func TestLogFollow(t *testing.T) {
	dir := t.TempDir()
	in := &Instance{Dir: dir}
	l, _ := OpenLog(filepath.Join(dir, LogFile), DefaultMaxLog)
	var done sync.WaitGroup
	var over bool
	var mu sync.Mutex
	var got bytes.Buffer
	done.Add(1)
	go func() {
		defer done.Done()
		in.ReadLog(context.Background(), &got, ReadOptions{Follow: true, Done: func() bool { mu.Lock(); defer mu.Unlock(); return over }})
	}()
	for i := 0; i < 5; i++ {
		fmt.Fprintf(l, "tick %d\n", i)
		time.Sleep(30 * time.Millisecond)
	}
	l.Close()
	mu.Lock()
	over = true
	mu.Unlock()
	done.Wait()
	if got.String() != "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n" {
		t.Errorf("followed: %q", got.String())
	}
}

// BenchmarkList is mote ps's work with 500 instances (the goal: under
// 200 ms).
func BenchmarkList(b *testing.B) {
	root := b.TempDir()
	for i := 0; i < 500; i++ {
		in, err := Create(root, Spec{Name: fmt.Sprintf("svc-%d", i), Target: "spt"})
		if err != nil {
			b.Fatal(err)
		}
		in.MarkKilled(0)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if list, err := List(root); err != nil || len(list) != 500 {
			b.Fatal(len(list), err)
		}
	}
}
