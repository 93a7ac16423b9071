package confine

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The filter, run in x/net/bpf's VM on the seccomp data of calls.
func TestFilterDecisions(t *testing.T) {
	f, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(f))
	for i, in := range f {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insts, _ := bpf.Disassemble(raw)
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	const kill, allow = unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_ALLOW
	goClone := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM)
	for _, c := range []struct {
		name string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"read", auditArchX8664, unix.SYS_READ, 0, allow},
		{"openat2", auditArchX8664, unix.SYS_OPENAT2, 0, allow},
		{"ioctl (KVM)", auditArchX8664, unix.SYS_IOCTL, 0, allow},
		{"socket", auditArchX8664, unix.SYS_SOCKET, 0, allow},
		{"clone of a Go thread", auditArchX8664, unix.SYS_CLONE, goClone, allow},
		{"clone of a thread, flags 17", auditArchX8664, unix.SYS_CLONE, 17, allow},
		{"clone into a new user namespace", auditArchX8664, unix.SYS_CLONE, goClone | unix.CLONE_NEWUSER, kill},
		{"clone3", auditArchX8664, unix.SYS_CLONE3, 0, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"execve", auditArchX8664, unix.SYS_EXECVE, 0, kill},
		{"ptrace", auditArchX8664, unix.SYS_PTRACE, 0, kill},
		{"mount", auditArchX8664, unix.SYS_MOUNT, 0, kill},
		{"bpf", auditArchX8664, unix.SYS_BPF, 0, kill},
		{"io_uring_setup", auditArchX8664, unix.SYS_IO_URING_SETUP, 0, kill},
		{"x32 read", auditArchX8664, 0x40000000, 0, kill},
		{"i386 (int 0x80)", 0x40000003, 3, 0, kill},
	} {
		// x/net/bpf's VM loads words big-endian, as BPF does a packet's;
		// the kernel loads seccomp data in the CPU's order, so each word
		// is written here as the VM will read it.
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], c.nr)
		binary.BigEndian.PutUint32(data[4:], c.arch)
		binary.BigEndian.PutUint32(data[16:], uint32(c.arg0))
		binary.BigEndian.PutUint32(data[20:], uint32(c.arg0>>32))
		got, err := vm.Run(data)
		if err != nil || uint32(got) != c.want {
			t.Errorf("%s: %#x %v, want %#x", c.name, got, err, c.want)
		}
	}
}

// A confined process goes on with what a tender does (threads, files, a
// loopback server and client), and dies of SIGSYS at a denied call.
func TestConfinedProcess(t *testing.T) {
	if what := os.Getenv("CONFINE_HELPER"); what != "" {
		helper(what)
		return
	}
	for _, c := range []struct {
		what   string
		killed bool
	}{{"work", false}, {"execve", true}, {"subprocess", false}, {"mount", true}, {"unshare", true}, {"clone3", false}} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestConfinedProcess$")
		cmd.Env = append(os.Environ(), "CONFINE_HELPER="+c.what, "CONFINE_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case c.killed && !(ws.Signaled() && ws.Signal() == syscall.SIGSYS):
			t.Errorf("%s: not killed by SIGSYS: %v\n%s", c.what, err, out)
		case !c.killed && (err != nil || !strings.Contains(string(out), "helper ok")):
			t.Errorf("%s: %v\n%s", c.what, err, out)
		case c.what == "subprocess" && !strings.Contains(string(out), "bad system call"):
			t.Errorf("a subprocess's exec was not stopped:\n%s", out)
		}
	}
}

func helper(what string) {
	fail := func(f string, a ...any) { fmt.Printf(f+"\n", a...); os.Exit(1) }
	for i := 0; i < 3; i++ { // as a background instance's restarts do
		if err := Tender(); err != nil {
			fail("%v", err)
		}
	}
	// Linux 5.9 and later count them.
	if b, _ := os.ReadFile("/proc/self/status"); strings.Contains(string(b), "Seccomp_filters:") && !strings.Contains(string(b), "Seccomp_filters:\t1\n") {
		fail("filters stacked:\n%s", b)
	}
	switch what {
	case "work":
		done := make(chan error, 8)
		for i := 0; i < 8; i++ { // new threads (clone) under the filter
			go func() {
				p := filepath.Join(os.Getenv("CONFINE_DIR"), fmt.Sprint(i))
				err := os.WriteFile(p, []byte("x"), 0o600)
				if err == nil {
					_, err = os.ReadFile(p)
				}
				done <- err
			}()
		}
		for i := 0; i < 8; i++ {
			if err := <-done; err != nil {
				fail("files: %v", err)
			}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail("listen: %v", err)
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") }))
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			fail("get: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "pong" {
			fail("body %q", b)
		}
	case "execve": // the tender itself
		syscall.Exec("/bin/true", []string{"true"}, nil)
	case "subprocess": // its child, which inherits the filter, dies at its exec
		fmt.Println("subprocess:", exec.Command("/bin/true").Run())
	case "mount":
		unix.Mount("none", os.Getenv("CONFINE_DIR"), "tmpfs", 0, "")
	case "unshare":
		unix.Unshare(unix.CLONE_NEWNS)
	case "clone3":
		if _, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0); e != unix.ENOSYS {
			fail("clone3: %v", e)
		}
	}
	fmt.Println("helper ok")
}
