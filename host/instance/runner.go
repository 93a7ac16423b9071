package instance

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Runner is the process that runs an instance: it holds the lock for its
// life, records the state as the guest starts and ends, and writes the
// console log.
type Runner struct {
	in   *Instance
	lock *os.File
	Log  *Log
}

// Run takes the instance for the calling process: the lock (an instance
// runs once at a time), a fresh state naming this process, and the log.
func (in *Instance) Run(maxLog int64) (*Runner, error) {
	lock, err := os.OpenFile(filepath.Join(in.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("instance %s is running already", in.Spec.Name)
	}
	os.Remove(filepath.Join(in.Dir, stopFile))
	log, err := OpenLog(filepath.Join(in.Dir, LogFile), maxLog)
	if err != nil {
		lock.Close()
		return nil, err
	}
	r := &Runner{in: in, lock: lock, Log: log}
	in.State = State{PID: os.Getpid(), Started: time.Now(), Running: true}
	if err := r.save(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Runner) save() error { return writeJSON(filepath.Join(r.in.Dir, stateFile), r.in.State) }

// Exited records the guest's exit status.
func (r *Runner) Exited(status int) {
	r.in.State.Status = &status
	r.in.State.Ended = time.Now()
	r.in.State.Running = false
	r.save()
}

// Restarted records a restart by the policy.
func (r *Runner) Restarted() {
	r.in.State.Restarts++
	r.in.State.Running = true
	r.in.State.Ended = time.Time{}
	r.save()
}

// StopAsked says whether mote stop asked for the end.
func (r *Runner) StopAsked() bool {
	_, err := os.Stat(filepath.Join(r.in.Dir, stopFile))
	return err == nil
}

// Close ends the run: the log is flushed and the lock dropped.
func (r *Runner) Close() {
	r.Log.Close()
	r.lock.Close()
}
