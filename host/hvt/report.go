package hvt

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
)

// Reports for guests the tender has to stop: what happened, the
// registers, a backtrace symbolized from the guest's own pclntab, and the
// thread's last system calls.

// crash ends the guest after a fault it could not handle.
func (t *thread) crash(what string, u *userState) {
	t.m.exit(ExitCrash, &ExitError{Status: ExitCrash, Report: t.report("guest crashed: "+what, u)})
}

// oom ends the guest when it touches more memory than it was given.
func (t *thread) oom(e *oomError, u *userState) {
	t.m.exit(ExitOOM, &ExitError{Status: ExitOOM, Report: t.report(fmt.Sprintf("%v; run with a larger -m", e), u)})
}

// badSyscall ends a --strict guest that made a call outside the ABI.
func (t *thread) badSyscall(a *sysArgs, u userState) {
	t.m.exit(ExitBadSyscall, &ExitError{Status: ExitBadSyscall, Report: t.report(fmt.Sprintf(
		"guest made system call %s (nr %d, args %#x %#x %#x) outside the Mote ABI (--strict)",
		sysName(a.nr), a.nr, a.a[0], a.a[1], a.a[2]), &u)})
}

func (t *thread) report(what string, u *userState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mote: %s\n", what)
	r := t.cpu.k.Run.Regs()
	s := t.cpu.k.Run.Sregs()
	rip, rsp, rflags := r.RIP, r.RSP, r.RFLAGS
	if u != nil {
		rip, rsp, rflags = u.rip, u.rsp, u.rflags
	}
	fmt.Fprintf(&b, "thread %d (vCPU %d)\n", t.tid, t.cpu.id)
	fmt.Fprintf(&b, "  rip %#016x  rsp %#016x  rflags %#x\n", rip, rsp, rflags)
	fmt.Fprintf(&b, "  rax %#016x  rbx %#016x  rcx %#016x  rdx %#016x\n", r.RAX, r.RBX, r.RCX, r.RDX)
	fmt.Fprintf(&b, "  rsi %#016x  rdi %#016x  rbp %#016x  r8  %#016x\n", r.RSI, r.RDI, r.RBP, r.R8)
	fmt.Fprintf(&b, "  r9  %#016x  r10 %#016x  r11 %#016x  r12 %#016x\n", r.R9, r.R10, r.R11, r.R12)
	fmt.Fprintf(&b, "  r13 %#016x  r14 %#016x  r15 %#016x  fs  %#016x\n", r.R13, r.R14, r.R15, s.FS.Base)
	fmt.Fprintf(&b, "  cr2 %#016x\n", s.CR2)
	b.WriteString("backtrace:\n")
	for _, pc := range t.backtrace(rip, rsp, r.RBP) {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(t.m.img.Symbolize(pc).String(), "\n", "\n  "))
	}
	if t.lastNext > 0 {
		b.WriteString("last system calls, oldest first:\n")
		n := min(t.lastNext, len(t.last))
		for i := t.lastNext - n; i < t.lastNext; i++ {
			c := t.last[i%len(t.last)]
			fmt.Fprintf(&b, "  %s(%#x, %#x, %#x) = %s\n", sysName(c.nr), c.args[0], c.args[1], c.args[2], resultString(c.ret))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// backtrace follows the frame-pointer chain Go maintains on amd64, reading
// guest memory without faulting anything in. A leaf function without a
// frame has not pushed RBP, so its caller is found from the return address
// at the top of the stack, when that follows a call instruction.
func (t *thread) backtrace(pc, sp, fp uint64) []uint64 {
	pcs := []uint64{pc}
	if ret, ok := t.m.mem.peek(sp); ok && t.isReturnAddress(ret) {
		if next, ok := t.m.mem.peek(fp + 8); !ok || next != ret {
			pcs = append(pcs, ret-1)
		}
	}
	for i := 0; i < 64 && fp != 0 && fp%8 == 0; i++ {
		next, ok1 := t.m.mem.peek(fp)
		ret, ok2 := t.m.mem.peek(fp + 8)
		if !ok1 || !ok2 || ret == 0 {
			break
		}
		pcs = append(pcs, ret-1) // inside the call instruction, for the line
		if next <= fp {
			break
		}
		fp = next
	}
	return pcs
}

// isReturnAddress reports whether a call instruction (call rel32) ends at
// ret inside the program's code.
func (t *thread) isReturnAddress(ret uint64) bool {
	if ret < 5 || t.m.img.Symbolize(ret-1).Function == "" {
		return false
	}
	w, ok := t.m.mem.peek((ret - 5) &^ 7)
	if !ok {
		return false
	}
	return byte(w>>(8*((ret-5)&7))) == 0xe8
}

// oomWatch passes the guest's standard error on and notes whether Go's
// runtime said it was out of memory ("fatal error: runtime: out of
// memory"), the sign that a refused allocation, not something else,
// ended the guest.
type oomWatch struct {
	w    io.Writer
	mu   sync.Mutex
	tail []byte // the end of the last write, for a phrase cut in two
	saw  atomic.Bool
}

var oomPhrase = []byte("runtime: out of memory")

func (o *oomWatch) Write(p []byte) (int, error) {
	o.mu.Lock()
	head := append(o.tail, p[:min(len(p), len(oomPhrase))]...)
	if bytes.Contains(head, oomPhrase) || bytes.Contains(p, oomPhrase) {
		o.saw.Store(true)
	}
	if len(p) >= len(oomPhrase) {
		o.tail = append(o.tail[:0], p[len(p)-len(oomPhrase):]...)
	} else {
		o.tail = append(o.tail[:0], head[max(0, len(head)-len(oomPhrase)):]...)
	}
	o.mu.Unlock()
	return o.w.Write(p)
}
