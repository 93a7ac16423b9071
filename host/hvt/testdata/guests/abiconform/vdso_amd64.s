#include "textflag.h"

// func callVDSO(fn, a0, a1 uintptr) uintptr
// The vDSO's functions use a few words of stack below SP, which a
// NOSPLIT function's guard leaves room for.
TEXT ·callVDSO(SB), NOSPLIT, $0-32
	MOVQ	fn+0(FP), AX
	MOVQ	a0+8(FP), DI
	MOVQ	a1+16(FP), SI
	CALL	AX
	MOVQ	AX, ret+24(FP)
	RET
