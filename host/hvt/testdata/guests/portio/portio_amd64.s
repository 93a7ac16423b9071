#include "textflag.h"

// `out %al, $imm8` is 0xe6 imm8: Go's assembler has no immediate-port form.
TEXT ·out14(SB), NOSPLIT, $0-0
	BYTE $0xe6; BYTE $14
	RET

TEXT ·out13(SB), NOSPLIT, $0-0
	BYTE $0xe6; BYTE $13
	RET

TEXT ·out128(SB), NOSPLIT, $0-0
	BYTE $0xe6; BYTE $0x80
	RET

TEXT ·out255(SB), NOSPLIT, $0-0
	BYTE $0xe6; BYTE $0xff
	RET
