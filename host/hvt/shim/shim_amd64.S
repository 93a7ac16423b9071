// The system-call shim: answers, inside the guest and without an exit,
// the calls that only read or write the guest's own state. The tender
// rewrites each `mov $nr, %eax; syscall` site of these calls in the Go
// runtime into `call shim_<name>` (see patch.go), so the shim is entered
// with a return address on the stack and the call's arguments in
// registers. Like the system call it replaces, it may change only RAX, RCX
// and R11. Anything unusual (bad arguments, a signal becoming deliverable)
// goes to the tender through the doorbell, as a real system call would.
//
// Layout (shim.go): this code page, then the process page (RIP-relative:
// +0x1000), then one 64-byte block per thread at %gs:0.
// Assembled by gen.sh into code_amd64.go; never edited by hand.

#define PROC		0x1000		// from the start of this page
#define P_CPUMASK	0
#define P_PENDING	8
#define P_ACTIONS	64		// 40 bytes a signal: seq, handler, flags, restorer, mask

#define T_TID		0
#define T_MASK		8
#define T_ALTSP		16
#define T_ALTFLAGS	24
#define T_ALTSIZE	32
#define T_PENDING	40
#define T_ALTSEQ	48		// odd while the alternate stack is being changed

#define UC_FPSTATE	224		// ucontext: uc_mcontext.fpstate
#define FP_SW_MAGIC1	464		// fpstate: Linux's software-reserved bytes
#define FP_SW_XFEATURES	472
#define FP_XSTATE_MAGIC1 0x46505853

#define DOORBELL	0x7f8000003000
#define NR_SIGCHECK	0x10000		// the tender's private call: deliver pending signals
#define NR_SIGRETURN	0x10001		// rt_sigreturn whose vector state the shim restored

#define KILLSTOP	0x40100		// bits of SIGKILL and SIGSTOP

#define VDSO_MULT	0x7ffff7ff1010	// the vDSO data page's ns-per-tick (32.32), shim.go: VDSOMult
#define SPIN_MAX_NS	100000		// shorter sleeps spin: cheaper than an exit

// PENDING_UNBLOCKED leaves ZF clear if a signal pending for the thread or
// the process is not blocked by the thread's mask (clobbers RAX, RCX).
#define PENDING_UNBLOCKED \
	mov	%gs:T_MASK, %rax; \
	not	%rax; \
	mov	%gs:T_PENDING, %rcx; \
	or	PROC+P_PENDING+shim_start(%rip), %rcx; \
	test	%rax, %rcx

	.text

shim_start:

// doorbell performs the system call in %eax in the tender and returns to
// the shim's caller: it takes the return address off the stack into RCX,
// as SYSCALL would have left it.
#define FALLBACK(nr)	pop %rcx; mov $nr, %eax; movabs %al, DOORBELL

	.globl shim_gettid
shim_gettid:
	mov	%gs:T_TID, %eax
	ret

	.globl shim_getpid
shim_getpid:
	mov	$1, %eax
	ret

// sched_getaffinity(pid, len, mask)
	.globl shim_sched_getaffinity
shim_sched_getaffinity:
	test	%rdi, %rdi
	jnz	1f
	cmp	$8, %rsi
	jb	1f
	mov	PROC+P_CPUMASK+shim_start(%rip), %rax
	mov	%rax, (%rdx)
	mov	$8, %eax
	ret
1:	FALLBACK(204)

// rt_sigprocmask(how, set, oset, sigsetsize)
	.globl shim_rt_sigprocmask
shim_rt_sigprocmask:
	cmp	$8, %r10
	jne	9f
	cmp	$2, %rdi
	ja	9f
	mov	%gs:T_MASK, %rax
	test	%rdx, %rdx
	jz	1f
	mov	%rax, (%rdx)
1:	test	%rsi, %rsi
	jz	8f
	mov	(%rsi), %rcx
	cmp	$1, %edi
	jb	2f			// SIG_BLOCK
	je	3f			// SIG_UNBLOCK
	mov	%rcx, %rax		// SIG_SETMASK
	jmp	4f
2:	or	%rcx, %rax
	jmp	4f
3:	not	%rcx
	and	%rcx, %rax
4:	and	$~KILLSTOP, %rax
	mov	%rax, %gs:T_MASK
	// A pending signal the new mask lets through must be delivered now.
	not	%rax
	mov	%gs:T_PENDING, %rcx
	or	PROC+P_PENDING+shim_start(%rip), %rcx
	test	%rax, %rcx
	jnz	7f
8:	xor	%eax, %eax
	ret
7:	FALLBACK(NR_SIGCHECK)
9:	FALLBACK(14)

// rt_sigaction(sig, act, oact, sigsetsize)
	.globl shim_rt_sigaction
shim_rt_sigaction:
	cmp	$8, %r10
	jne	9f
	lea	-1(%rdi), %rax
	cmp	$63, %rax
	ja	9f			// not a signal number
	cmp	$9, %edi
	je	9f			// SIGKILL: the tender refuses it
	cmp	$19, %edi
	je	9f			// SIGSTOP: likewise
	imul	$40, %rdi, %r11
	lea	PROC+P_ACTIONS+shim_start(%rip), %rcx
	add	%rcx, %r11		// r11 = this signal's slot
	test	%rdx, %rdx
	jz	1f
	mov	8(%r11), %rax
	mov	%rax, (%rdx)
	mov	16(%r11), %rax
	mov	%rax, 8(%rdx)
	mov	24(%r11), %rax
	mov	%rax, 16(%rdx)
	mov	32(%r11), %rax
	mov	%rax, 24(%rdx)
1:	test	%rsi, %rsi
	jz	2f
	mov	(%rsi), %rax		// fault now, not with the slot half written
	mov	24(%rsi), %rax
	incq	(%r11)			// odd: the tender waits
	mov	(%rsi), %rax
	mov	%rax, 8(%r11)
	mov	8(%rsi), %rax
	mov	%rax, 16(%r11)
	mov	16(%rsi), %rax
	mov	%rax, 24(%r11)
	mov	24(%rsi), %rax
	and	$~KILLSTOP, %rax
	mov	%rax, 32(%r11)
	incq	(%r11)
	// A signal held back while the slot changed must be delivered now.
	PENDING_UNBLOCKED
	jnz	7f
2:	xor	%eax, %eax
	ret
7:	FALLBACK(NR_SIGCHECK)
9:	FALLBACK(13)
	.globl shim_rt_sigaction_end
shim_rt_sigaction_end:

// sigaltstack(ss, oss); the caller's stack pointer is %rsp+8. The three
// words change under a sequence count, odd meanwhile: a signal that
// interrupts the change waits (the tender sees the odd count) until it is
// whole, and is then delivered through NR_SIGCHECK.
	.globl shim_sigaltstack
shim_sigaltstack:
	// r11 = 1 if the caller runs on its alternate stack.
	xor	%r11d, %r11d
	testl	$2, %gs:T_ALTFLAGS	// SS_DISABLE
	jnz	1f
	lea	8(%rsp), %rax
	sub	%gs:T_ALTSP, %rax	// rax = sp - ss_sp
	jbe	1f
	cmp	%gs:T_ALTSIZE, %rax
	ja	1f
	mov	$1, %r11d		// SS_ONSTACK
1:	test	%rsi, %rsi
	jz	2f
	mov	%gs:T_ALTSP, %rax
	mov	%rax, (%rsi)
	mov	%gs:T_ALTFLAGS, %rax
	or	%r11, %rax
	mov	%rax, 8(%rsi)
	mov	%gs:T_ALTSIZE, %rax
	mov	%rax, 16(%rsi)
2:	test	%rdi, %rdi
	jz	8f
	test	%r11, %r11
	jnz	9f			// EPERM: the tender says so
	mov	8(%rdi), %eax
	cmp	$2, %eax
	je	3f
	test	%eax, %eax
	jnz	9f			// EINVAL
	mov	16(%rdi), %rax
	cmp	$2048, %rax
	jb	9f			// ENOMEM
	mov	(%rdi), %rcx		// fault now, not with the words half written
	incq	%gs:T_ALTSEQ
	mov	%rax, %gs:T_ALTSIZE
	mov	%rcx, %gs:T_ALTSP
	movq	$0, %gs:T_ALTFLAGS
	jmp	7f
3:	incq	%gs:T_ALTSEQ
	movq	$0, %gs:T_ALTSP
	movq	$0, %gs:T_ALTSIZE
	movq	$2, %gs:T_ALTFLAGS
7:	incq	%gs:T_ALTSEQ
	// A signal held back while the words changed must be delivered now.
	PENDING_UNBLOCKED
	jnz	6f
8:	xor	%eax, %eax
	ret
6:	FALLBACK(NR_SIGCHECK)
9:	FALLBACK(131)

// nanosleep(req, rem): a sleep shorter than an exit (the runtime's sysmon
// sleeps 20 µs at a time when busy) spins on the TSC here instead. Longer
// sleeps go to the tender.
	.globl shim_nanosleep
shim_nanosleep:
	cmpq	$0, (%rdi)		// tv_sec
	jne	9f
	mov	8(%rdi), %rax		// tv_nsec
	cmp	$SPIN_MAX_NS, %rax
	ja	9f
	movabs	$VDSO_MULT, %rcx
	mov	(%rcx), %rcx
	test	%rcx, %rcx
	jz	9f
	push	%rdx			// rdtsc and div clobber it; a system call may not
	xor	%edx, %edx
	shl	$32, %rax		// nsec < 2^17, so nsec<<32 fits
	div	%rcx			// rax = ticks to wait
	mov	%rax, %r11
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	add	%rax, %r11		// r11 = deadline
1:	pause
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	cmp	%r11, %rax
	jb	1b
	pop	%rdx
	xor	%eax, %eax
	ret
9:	FALLBACK(35)

// Calls the tender answers. Reaching it through the doorbell from ring 3
// saves a SYSCALL-path exit (SYSCALL enters ring 0, so the tender must
// rewrite the special registers to resume, and the entry page is walked
// again): ~28 instead of ~36 µs a call here. exit (of a thread) is not
// among them: its stack may be reused once the thread says it is done, so
// nothing may be pushed there. rt_sigreturn has its own entry below.
#define DOOR(name, nr)	.globl shim_##name; shim_##name: FALLBACK(nr)
DOOR(read, 0)
DOOR(write, 1)
DOOR(close, 3)
DOOR(mmap, 9)
DOOR(munmap, 11)
DOOR(sched_yield, 24)
DOOR(mincore, 27)
DOOR(madvise, 28)
DOOR(clone, 56)
DOOR(futex, 202)
DOOR(exit_group, 231)
DOOR(tgkill, 234)
DOOR(openat, 257)

// syscall6 replaces `mov %rbx, %rdi; syscall` in the runtime's generic
// system call (internal/runtime/syscall/linux.Syscall6, through which
// package syscall and the network poller go): the number is already in
// RAX, the other arguments in place.
	.globl shim_syscall6
shim_syscall6:
	mov	%rbx, %rdi
	pop	%rcx
	movabs	%al, DOORBELL

// Signal entry and return. Between shim_signal and shim_signal_end, a
// fault is the guest's (a bad frame), never a call's EFAULT.
//
// The tender delivers a signal by writing the rt_sigframe, with the
// XSAVE header zeroed and Linux's software-reserved words filled in, and
// pointing the thread at sigenter_xsave (sigenter_fxsave where the guest
// has no XSAVE) with the handler's arguments in place (rdi = signal,
// rsi = &info, rdx = &uc), the handler in rax and rsp at the frame. The
// stub saves the interrupted vector state into the frame with the CPU's
// own instruction, in ring 3, so every component XCR0 enables (x87, SSE,
// AVX, AVX-512) is saved exactly as Linux saves it, and no KVM ioctl is
// needed. The handler starts, as on Linux, with the initial state.
	.globl shim_signal
shim_signal:

	.globl shim_sigenter_xsave
shim_sigenter_xsave:
	mov	%rax, %r11
	mov	%rdx, %r10
	mov	UC_FPSTATE(%rdx), %rcx
	// The features to save are those the tender wrote into the frame (the
	// guest's XCR0), never more: the area is sized for them alone, even
	// where the CPU's XCR0 at CPL3 would be the host's.
	mov	FP_SW_XFEATURES(%rcx), %eax
	mov	FP_SW_XFEATURES+4(%rcx), %edx
	xsave64	(%rcx)
	lea	shim_initfp(%rip), %rcx
	xrstor64 (%rcx)
	mov	%r10, %rdx
	xor	%eax, %eax
	jmp	*%r11

	.globl shim_sigenter_fxsave
shim_sigenter_fxsave:
	mov	%rax, %r11
	mov	UC_FPSTATE(%rdx), %rcx
	fxsave64 (%rcx)
	fxrstor64 shim_initfp(%rip)
	xor	%eax, %eax
	jmp	*%r11

// rt_sigreturn, from the rewritten site in runtime.sigreturn__sigaction:
// the handler's return took the restorer's address off the frame, so the
// ucontext is just above this call's return address. The vector state
// comes back from the frame (with any edit the handler made): XRSTOR of
// the features the frame says it holds when it carries Linux's XSAVE
// magic, the legacy area alone otherwise. The tender restores the rest.
	.globl shim_rt_sigreturn
shim_rt_sigreturn:
	mov	8+UC_FPSTATE(%rsp), %rcx
	test	%rcx, %rcx
	jz	2f
	cmpl	$FP_XSTATE_MAGIC1, FP_SW_MAGIC1(%rcx)
	jne	1f
	mov	FP_SW_XFEATURES(%rcx), %eax
	mov	FP_SW_XFEATURES+4(%rcx), %edx
	xrstor64 (%rcx)
	jmp	2f
1:	fxrstor64 (%rcx)
2:	FALLBACK(NR_SIGRETURN)

	.globl shim_signal_end
shim_signal_end:

// The initial x87/SSE/extended state a handler starts with: MXCSR at its
// reset value, an XSAVE header with no component set (XRSTOR then puts
// every component in its initial state), x87 control word as FNINIT
// leaves it (for FXRSTOR).
	.balign	64
shim_initfp:
	.word	0x037f			// FCW
	.fill	22, 1, 0
	.long	0x1f80			// MXCSR
	.long	0xffff			// MXCSR_MASK
	.fill	512+64-32, 1, 0

shim_end:
