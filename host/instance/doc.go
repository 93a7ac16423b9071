// Package instance keeps the state of unikernels started in the
// background (mote run -d): one directory per instance under a state
// directory, holding what was asked (spec.json), what happened
// (state.json), the console (a bounded, rotated log) and a lock file.
//
// There is no daemon. Each instance is run by its own detached mote
// process, which holds the instance's lock for as long as it lives; the
// kernel drops the lock when that process ends however it ends, so an
// instance is running exactly when its lock is held, and a state file
// that still says "running" after a kill -9 is read as what it is.
package instance
