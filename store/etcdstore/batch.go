package etcdstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// Group commit. Each etcd commit is a round trip to the leader and a quorum's fsync, and
// concurrent read-modify-writes of one key (the feed's sequence counter) conflict and rerun; so,
// like bbolt's DB.Batch, concurrent Batch calls share one transaction: their fns run one after
// another in it (each sees the writes of those before it) and commit in one Txn. When one fn
// fails, the batch runs again without it and that call runs alone (as an Update), so its error
// is its own and it writes nothing. A batch too large for one Txn runs every call alone.

// Defaults of the group-commit limits (see WithBatchLimits). A commit takes a few milliseconds
// on a three-member cluster, so a short delay gathers the writers that arrive meanwhile.
const (
	DefaultBatchDelay = 2 * time.Millisecond
	DefaultBatchSize  = 64
)

// WithBatchLimits sets the group-commit limits of Batch: a batch starts when it holds size calls
// or delay after its first call, whichever comes first. Zero keeps a default.
func WithBatchLimits(delay time.Duration, size int) Option {
	return func(o *options) {
		if delay > 0 {
			o.batchDelay = delay
		}
		if size > 0 {
			o.batchSize = size
		}
	}
}

type call struct {
	fn  func(store.Tx) error
	err chan error
}

// errAlone tells a call to run on its own, as an Update.
var errAlone = errors.New("etcdstore: run alone")

// callFailed is how a batch's combined fn reports which call failed.
type callFailed struct {
	i   int
	err error
}

func (e *callFailed) Error() string { return e.err.Error() }

// Batch implements store.Store with group commit (see above).
func (s *Store) Batch(fn func(store.Tx) error) error {
	c := call{fn: fn, err: make(chan error, 1)}
	s.mu.Lock()
	s.pending = append(s.pending, c)
	switch {
	case len(s.pending) >= s.opts.batchSize:
		calls := s.takeBatch()
		go s.runBatch(calls)
	case s.timer == nil:
		s.timer = time.AfterFunc(s.opts.batchDelay, func() {
			s.mu.Lock()
			calls := s.takeBatch()
			s.mu.Unlock()
			s.runBatch(calls)
		})
	}
	s.mu.Unlock()
	err := <-c.err
	if err == errAlone {
		return s.Update(fn)
	}
	return err
}

// takeBatch takes the pending calls; s.mu is held.
func (s *Store) takeBatch() []call {
	calls := s.pending
	s.pending = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	return calls
}

func (s *Store) runBatch(calls []call) {
	for len(calls) > 0 {
		if len(calls) == 1 {
			calls[0].err <- errAlone
			return
		}
		err := s.Update(func(tx store.Tx) error {
			for i, c := range calls {
				if err := safely(c.fn, tx); err != nil {
					return &callFailed{i: i, err: err}
				}
			}
			return nil
		})
		var failed *callFailed
		switch {
		case errors.As(err, &failed):
			calls[failed.i].err <- errAlone
			calls = append(calls[:failed.i:failed.i], calls[failed.i+1:]...)
			continue
		case errors.Is(err, ErrTooLarge):
			err = errAlone
		}
		for _, c := range calls {
			c.err <- err
		}
		return
	}
}

// safely runs fn, turning a panic into an error: the call then runs alone, in its caller's
// goroutine, where the panic happens again and belongs, instead of killing the batch's.
func safely(fn func(store.Tx) error, tx store.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(tx)
}
