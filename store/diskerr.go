package store

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/treaty-dev/treaty/fail"
)

// A write the disk refuses (full, failing, read-only) is an outage of the service, not a bug in
// it: the caller should retry once an operator has fixed the disk, and the operator needs to know
// what to fix. writeError turns such errors from Update and Batch into fail.Unavailable with a
// message that says both, and leaves every other error (a domain refusal returned by fn, say)
// exactly as it was.

// diskAdvice says, for each errno a refused write may carry, what the operator should do.
var diskAdvice = map[syscall.Errno]string{
	syscall.ENOSPC: "free space on the server's data volume",
	syscall.EDQUOT: "raise the data volume's quota or free space on it",
	syscall.EFBIG:  "raise the file size limit of the server process",
	syscall.EIO:    "check the data volume's disk and the system log",
	syscall.EROFS:  "make the data volume writable again",
}

// writeError classifies an error from a write transaction. committing says fn returned nil, so
// the error came from bbolt's commit (writing, growing or syncing the file): whatever its cause,
// nothing was written and the write can be retried.
func (b *Bolt) writeError(err error, committing bool) error {
	if err == nil || fail.KindOf(err) != fail.Internal {
		return err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if advice, ok := diskAdvice[errno]; ok {
			return fail.Unavailablef(fmt.Errorf("%s: %w", b.path, err),
				"the %s's store cannot write: %s; %s, then retry", b.name, errno.Error(), advice)
		}
	}
	if committing {
		return fail.Unavailablef(fmt.Errorf("%s: commit: %w", b.path, err),
			"the %s's store could not commit the write, so nothing was written; check the server's log and its data volume, then retry", b.name)
	}
	return err
}
