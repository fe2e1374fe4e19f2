package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Batch calls queue, and one of them, the leader, commits everything queued in one transaction
// (one fsync), then hands the lead to the first call that queued meanwhile, which commits that
// whole queue in turn. A lone call leads at once and pays one fsync; under load each commit takes
// what gathered during the one before, so batches grow with the load by themselves. bbolt's own
// DB.Batch instead waits a fixed delay (or a fixed count) before committing: at 32 issuing
// clients most calls sat out its timer, while any fixed count that helped at 32 clients hurt at
// 128 (BENCHMARKS.md, issue 5). As in DB.Batch, a call whose fn fails is taken out, the others are
// committed without it, and it runs alone, so its own error is what it returns; a fn that panics
// panics in its caller's goroutine.

// maxBatch bounds how many calls one transaction carries.
const maxBatch = 1024

// batchCall is one Batch call waiting for the group commit.
type batchCall struct {
	fn       func(Tx) error
	err      error
	panicked any // what fn panicked with, raised again in the caller
	// done receives once err is set, or when the call is handed the lead (lead set first); a
	// leader's own call receives too, unread (room for one).
	done chan struct{}
	lead bool
}

// errPanicked stands for a panic while a batch runs.
var errPanicked = errors.New("store: batch call panicked")

// Batch implements Store with a group commit (see above). A write the disk refuses returns a
// fail.Unavailable error, as from Update.
func (b *Bolt) Batch(fn func(Tx) error) error {
	c := &batchCall{fn: fn, done: make(chan struct{}, 1)}
	b.batchMu.Lock()
	b.queue = append(b.queue, c)
	leader := !b.committing
	b.committing = true
	b.batchMu.Unlock()
	if !leader {
		<-c.done
		if !c.lead {
			return c.result()
		}
	}
	b.batchMu.Lock()
	n := min(len(b.queue), maxBatch)
	calls := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.batchMu.Unlock()
	b.commitCalls(calls)
	b.batchMu.Lock()
	if len(b.queue) > 0 {
		next := b.queue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		b.committing = false
	}
	b.batchMu.Unlock()
	return c.result()
}

func (c *batchCall) result() error {
	if c.panicked != nil {
		panic(c.panicked)
	}
	return c.err
}

// run calls fn, turning a panic into errPanicked.
func (c *batchCall) run(tx Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.panicked, err = p, errPanicked
		}
	}()
	return c.fn(tx)
}

// commitCalls commits calls in one transaction, taking out (and running alone) each whose fn
// fails, and sets every call's result.
func (b *Bolt) commitCalls(calls []*batchCall) {
	for len(calls) > 0 {
		failed := -1
		err := b.db.Update(func(btx *bolt.Tx) error {
			tx := b.tx(btx)
			for i, c := range calls {
				c.panicked = nil
				if err := c.run(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			err = b.writeError(err, true)
			for _, c := range calls {
				c.err = err
				c.done <- struct{}{}
			}
			return
		}
		f := calls[failed]
		calls = append(calls[:failed:failed], calls[failed+1:]...)
		b.solo(f)
	}
}

// solo runs a call that failed in a batch in a transaction of its own and sets its result.
func (b *Bolt) solo(c *batchCall) {
	committing := false
	err := b.db.Update(func(btx *bolt.Tx) error {
		c.panicked = nil
		err := c.run(b.tx(btx))
		committing = err == nil
		return err
	})
	if c.panicked == nil {
		c.err = b.writeError(err, committing)
	}
	c.done <- struct{}{}
}
