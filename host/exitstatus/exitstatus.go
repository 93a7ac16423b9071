// Package exitstatus defines the exit statuses mote's tenders choose
// themselves, distinct from a guest's own (docs/abi.md), and the error
// that carries one with its report.
package exitstatus

const (
	Tender     = 125 // the tender could not start or run the guest
	OOM        = 137 // the guest ran out of memory (as the OOM killer's SIGKILL)
	Crash      = 139 // the guest faulted in a way it did not handle
	BadSyscall = 159 // --strict: a system call outside the Mote ABI (as SIGSYS)
)

// Error is a guest run a tender ended, with the status to exit with and a
// report for the user.
type Error struct {
	Status int
	Report string
}

func (e *Error) Error() string { return e.Report }

// ExitCode is the status mote run exits with.
func (e *Error) ExitCode() int { return e.Status }
