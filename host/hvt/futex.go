package hvt

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Futexes are served by the tender: waiters queue on the guest-physical
// address of the word, so threads on different vCPUs meet, and a wait ends
// on a wake, its timeout, or a kick (a signal or the guest's exit).

type futexTable struct {
	mu sync.Mutex
	q  map[uint64][]*futexWaiter
}

type futexWaiter struct {
	ch    chan struct{}
	woken bool
}

func sysFutex(t *thread, a *sysArgs) int64 {
	const (
		futexWait        = 0
		futexWake        = 1
		futexPrivate     = 128
		futexClockRealtm = 256
	)
	uaddr, op, val := a.a[0], int(a.a[1]), uint32(a.a[2])
	m := t.m
	switch op &^ (futexPrivate | futexClockRealtm) {
	case futexWait:
		d, timed, err := t.readTimespec(a.a[3])
		if err != nil {
			return errno(err)
		}
		word, err := m.mem.word32(uaddr, false)
		if err != nil {
			return errno(err)
		}
		pa, _ := m.mem.hostAddr(uaddr, false)
		f := &m.futexes
		f.mu.Lock()
		if atomic.LoadUint32(word) != val {
			f.mu.Unlock()
			return -int64(unix.EAGAIN)
		}
		w := &futexWaiter{ch: make(chan struct{})}
		if f.q == nil {
			f.q = map[uint64][]*futexWaiter{}
		}
		f.q[pa] = append(f.q[pa], w)
		f.mu.Unlock()
		kicked := t.wait(w.ch, d, timed)
		f.mu.Lock()
		defer f.mu.Unlock()
		if w.woken {
			return 0
		}
		ws := f.q[pa]
		for i, x := range ws {
			if x == w {
				f.q[pa] = append(ws[:i:i], ws[i+1:]...)
				break
			}
		}
		if len(f.q[pa]) == 0 {
			delete(f.q, pa)
		}
		if kicked {
			return -int64(unix.EINTR)
		}
		return -int64(unix.ETIMEDOUT)
	case futexWake:
		if _, err := m.mem.word32(uaddr, false); err != nil {
			return errno(err)
		}
		pa, _ := m.mem.hostAddr(uaddr, false)
		return int64(m.futexes.wake(pa, int(val)))
	}
	return -int64(unix.ENOSYS)
}

func (f *futexTable) wake(pa uint64, n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := f.q[pa]
	woken := 0
	for woken < n && woken < len(ws) {
		ws[woken].woken = true
		close(ws[woken].ch)
		woken++
	}
	if woken == len(ws) {
		delete(f.q, pa)
	} else {
		f.q[pa] = ws[woken:]
	}
	return woken
}
