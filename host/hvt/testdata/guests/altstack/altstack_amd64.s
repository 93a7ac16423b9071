#include "textflag.h"

// func setAltStack(fn uintptr, ss *stackT) int64
TEXT ·setAltStack(SB), NOSPLIT, $0-24
	MOVQ	fn+0(FP), AX
	MOVQ	ss+8(FP), DI
	XORL	SI, SI
	TESTQ	AX, AX
	JZ	sys
	CALL	AX
	MOVQ	AX, ret+16(FP)
	RET
sys:
	MOVL	$131, AX
	SYSCALL
	MOVQ	AX, ret+16(FP)
	RET
