package spt

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
)

// MaxThreads is how many threads an spt guest may have, as many as hvt
// gives a guest: a guest without a cap made 3003, each a host thread with
// its kernel stack.
const MaxThreads = 1024

// notifContinue is SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs the
// call as made. Safe here because the decision rests on the flags, a
// register, which the guest cannot change after the notification.
const notifContinue = 1

func isGoClone(flags uint64) bool {
	return flags == abi.CloneThread || flags == abi.CloneThread|unix.CLONE_SETTLS
}

// threadCount is the number of threads of process pid.
func threadCount(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("\nThreads:"))
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status has no Threads line", pid)
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	return strconv.Atoi(string(bytes.TrimSpace(line)))
}

// cloneAnswer is the supervisor's answer to the Go runtime's clone: go on
// below the cap, EAGAIN (as Linux answers at its own limit) at it.
func cloneAnswer(id uint64, pid int) seccompNotifResp {
	if n, err := threadCount(pid); err != nil || n >= MaxThreads {
		return seccompNotifResp{ID: id, Error: -int32(unix.EAGAIN)}
	}
	return seccompNotifResp{ID: id, Flags: notifContinue}
}
