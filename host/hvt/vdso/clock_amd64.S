// The vDSO's functions. __vdso_clock_gettime(clockid, *timespec) turns the TSC into nanoseconds with the scale and bases the tender
// publishes in the data page that follows the vDSO's code page, under a
// sequence counter, so that reading the clock costs the guest no exit.
// Clocks it does not know fall back to the clock_gettime system call.
// __vdso_gettimeofday(*timeval, *timezone) and __vdso_time(*time_t) read
// CLOCK_REALTIME through it, as Linux's vDSO offers them (the time zone
// is UTC). Bad pointers fault, as in Linux's vDSO.
//
// Data page layout (see vdso.go): 0 seq (u32, odd while the tender writes),
// 8 tsc_base, 16 mult (ns per tick << 32), 24 mono_base, 32 real_base.
//
// Assembled by gen.sh into code_amd64.go; never edited by hand.
	.text
	.globl __vdso_clock_gettime
__vdso_clock_gettime:
.Lclock:				// for calls that need no relocation
	lea	0(%rip), %r8		// displacement set by Build: data page
	cmp	$1, %edi		// CLOCK_MONOTONIC
	je	mono
	cmp	$4, %edi		// CLOCK_MONOTONIC_RAW
	je	mono
	cmp	$6, %edi		// CLOCK_MONOTONIC_COARSE
	je	mono
	cmp	$7, %edi		// CLOCK_BOOTTIME
	je	mono
	test	%edi, %edi		// CLOCK_REALTIME
	je	real
	cmp	$5, %edi		// CLOCK_REALTIME_COARSE
	je	real
	mov	$228, %eax		// SYS_clock_gettime
	syscall
	ret
mono:
	mov	$24, %r9d
	jmp	1f
real:
	mov	$32, %r9d
1:	mov	(%r8), %r10d
	test	$1, %r10d
	jnz	3f
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	sub	8(%r8), %rax
	jns	2f
	xor	%eax, %eax		// TSC behind the base: clamp to the base
2:	mulq	16(%r8)
	shrd	$32, %rdx, %rax
	add	(%r8,%r9), %rax
	cmp	(%r8), %r10d
	jne	1b
	xor	%edx, %edx
	mov	$1000000000, %ecx
	div	%rcx
	mov	%rax, (%rsi)
	mov	%rdx, 8(%rsi)
	xor	%eax, %eax
	ret
3:	pause
	jmp	1b

	.globl __vdso_gettimeofday
__vdso_gettimeofday:
	push	%rsi			// tz
	push	%rdi			// tv
	sub	$16, %rsp		// a timespec
	xor	%edi, %edi		// CLOCK_REALTIME
	mov	%rsp, %rsi
	call	.Lclock
	mov	16(%rsp), %rdi
	test	%rdi, %rdi
	jz	1f
	mov	(%rsp), %rax
	mov	%rax, (%rdi)		// tv_sec
	mov	8(%rsp), %rax
	xor	%edx, %edx
	mov	$1000, %ecx
	div	%rcx
	mov	%rax, 8(%rdi)		// tv_usec
1:	mov	24(%rsp), %rsi
	test	%rsi, %rsi
	jz	2f
	movq	$0, (%rsi)		// tz_minuteswest, tz_dsttime
2:	add	$32, %rsp
	xor	%eax, %eax
	ret

	.globl __vdso_time
__vdso_time:
	push	%rdi			// tloc
	sub	$16, %rsp		// a timespec
	xor	%edi, %edi		// CLOCK_REALTIME
	mov	%rsp, %rsi
	call	.Lclock
	mov	(%rsp), %rax
	mov	16(%rsp), %rdi
	test	%rdi, %rdi
	jz	1f
	mov	%rax, (%rdi)
1:	add	$24, %rsp
	ret
