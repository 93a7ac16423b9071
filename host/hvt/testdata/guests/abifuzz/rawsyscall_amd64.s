#include "textflag.h"

// func rawSyscall(nr, a0, a1, a2, a3, a4, a5 uintptr) uintptr
//
// A SYSCALL instruction of the program's own, which the tender does not
// rewrite (it rewrites the runtime's sites): the call reaches it by the
// SYSCALL entry, where the runtime's go by the shim or the doorbell.
TEXT ·rawSyscall(SB), NOSPLIT, $0-64
	MOVQ nr+0(FP), AX
	MOVQ a0+8(FP), DI
	MOVQ a1+16(FP), SI
	MOVQ a2+24(FP), DX
	MOVQ a3+32(FP), R10
	MOVQ a4+40(FP), R8
	MOVQ a5+48(FP), R9
	SYSCALL
	MOVQ AX, ret+56(FP)
	RET
