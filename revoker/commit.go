package revoker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Group commit.
//
// Every append is fsync'd before it is acknowledged, and an fsync costs milliseconds whatever it
// carries, so appending one request per transaction caps the log at a few hundred revocations a
// second however many callers wait. Instead, callers queue their requests, and one of them, the
// leader, commits everything queued in one transaction (one fsync), then wakes the others. While it
// commits, new callers queue up behind it; when it is done it hands the lead to the first of them,
// which commits that whole queue in turn (after a few microseconds for the callers it just woke to
// queue again, see gather). A lone caller leads at once and pays one fsync, as before; many
// callers share each fsync.
//
// The lead passes from caller to caller, so the log runs no goroutine of its own: nothing to close,
// and nothing left running by the many tests and tools that open a log and forget it.
//
// Each request keeps its own semantics inside a batch:
//   - it is validated against the state with every earlier request of the batch applied;
//   - a refused request fails alone; a Publish call's entries are appended all or none;
//   - a request id seen earlier (before or within the batch) returns the original sequence;
//   - its caller returns only after the transaction that holds its events is durable;
//   - if the transaction itself fails (the disk), every request of the batch fails with nothing
//     appended.

// op is one caller's request waiting for the group commit: one Revoke, Restore or RevokeAll, or
// one Publish call (whose drafts go in all or none).
type op struct {
	ctx     context.Context
	drafts  []draft
	results []result
	err     error
	// done is closed when results and err are set, or when the caller is handed the lead (lead is
	// set before).
	done chan struct{}
	lead bool
}

// maxBatch bounds how many requests one transaction carries, so that a burst does not make one
// transaction (and the fsync its callers wait for) arbitrarily large.
const maxBatch = 1024

// draft is an event waiting to be appended. build sees the state at the head, with every earlier
// draft of the same batch applied, and returns the event or an error that refuses it.
type draft struct {
	requestID string
	build     func(*feed.State) (*treatyv1.Event, error)
}

// result is what one draft became.
type result struct {
	seq      uint64
	existing bool // the request id was appended before, or build found nothing to do
}

// alreadyInForce lets build say the request is in force already, at seq; nothing is appended.
type alreadyInForce struct{ seq uint64 }

func (a alreadyInForce) Error() string { return fmt.Sprintf("already in force at %d", a.seq) }

// append validates and appends drafts durably, batched with whatever other callers append at the
// same time. Either all of the drafts are appended or none.
func (l *Log) append(ctx context.Context, drafts []draft) ([]result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fail.Unavailablef(err, "request cancelled before it was appended")
	}
	o := &op{ctx: ctx, drafts: drafts, done: make(chan struct{})}
	l.queueMu.Lock()
	l.queue = append(l.queue, o)
	if l.leading {
		l.queueMu.Unlock()
		<-o.done
		if !o.lead {
			return o.results, o.err
		}
		l.queueMu.Lock()
	}
	l.leading = true
	l.gather()
	n := min(len(l.queue), maxBatch)
	batch := l.queue[:n:n]
	if n == len(l.queue) {
		l.queue = nil
	} else {
		l.queue = l.queue[n:]
	}
	l.queueMu.Unlock()

	l.commit(batch)
	l.lastBatch.Store(int64(len(batch)))
	l.batches.Add(1)

	for _, b := range batch {
		if b != o {
			close(b.done)
		}
	}
	l.queueMu.Lock()
	if len(l.queue) > 0 {
		next := l.queue[0]
		next.lead = true
		close(next.done)
	} else {
		l.leading = false
	}
	l.queueMu.Unlock()
	return o.results, o.err
}

// gather lets a leader wait briefly for the callers the last batch woke, when there were several:
// they queue again within microseconds, and without the wait the leader would commit almost alone
// and leave them all to the next fsync. Batches would then alternate between one request and
// all the others, each fsync carrying half of what it could. It waits only while the queue is
// short of the last batch and grew within gatherIdle, and never longer than gatherMax (a small
// part of an fsync); a lone caller (last batch of one) never waits. It yields rather than sleeps:
// a timer that short would round up to a millisecond. It is called and returns with queueMu held.
func (l *Log) gather() {
	want := min(int(l.lastBatch.Load()), maxBatch)
	if want <= 1 || len(l.queue) >= want {
		return
	}
	start := time.Now()
	grew, n := start, len(l.queue)
	for {
		l.queueMu.Unlock()
		runtime.Gosched()
		now := time.Now()
		l.queueMu.Lock()
		if len(l.queue) > n {
			grew, n = now, len(l.queue)
		}
		if n >= want || now.Sub(grew) > gatherIdle || now.Sub(start) > gatherMax {
			return
		}
	}
}

// gatherIdle and gatherMax bound gather.
const (
	gatherIdle = 50 * time.Microsecond
	gatherMax  = 500 * time.Microsecond
)

// errPartial aborts a batch's transaction when a request with several drafts is refused after
// some of them were applied: the transaction is retried without it.
var errPartial = errors.New("revoker: request refused after part of it was applied")

// commit appends a batch in one transaction and sets each op's results or error.
func (l *Log) commit(batch []*op) {
	defer func() {
		// A panic (a bug in a build function, say) must not leave the batch's callers waiting
		// and the lead held forever: the transaction rolled back, so each of them fails.
		if p := recover(); p != nil {
			l.cfg.Logger.Error("revoker: panic while committing a batch; nothing was appended", "panic", p)
			for _, o := range batch {
				o.results, o.err = nil, fail.Unavailablef(fmt.Errorf("panic: %v", p), "the revocation log could not be written; nothing was appended")
			}
		}
	}()
	live := make([]*op, 0, len(batch))
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = fail.Unavailablef(err, "request cancelled before it was appended")
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	base := l.state.Load()
	excluded := map[*op]bool{}
	for catchUps := 0; ; {
		var (
			appended []*treatyv1.Event
			next     *feed.State
			partial  *op
		)
		err := l.st.Update(func(tx store.Tx) error {
			appended, partial = appended[:0], nil
			// Another replica may have appended since the memory's head (follow.go).
			if err := l.checkHead(tx, base.Sequence()); err != nil {
				return err
			}
			ed := base.Edit()
			seen := map[string]uint64{}
			for _, o := range live {
				if excluded[o] {
					continue
				}
				o.results, o.err = o.results[:0], nil
				mark := len(appended)
				for _, d := range o.drafts {
					res, ev, err := l.apply(tx, ed, seen, d)
					if err == nil {
						o.results = append(o.results, res)
						if ev != nil {
							appended = append(appended, ev)
						}
						continue
					}
					refused, ok := err.(refusal)
					if !ok {
						return err
					}
					o.results, o.err = nil, refused.err
					if len(appended) > mark {
						partial = o
						return errPartial
					}
					break
				}
			}
			next = base
			if len(appended) == 0 {
				return nil
			}
			changes := ed.Changes()
			next = ed.State()
			return changes.Save(tx)
		})
		if errors.Is(err, errBehind) && catchUps < maxCatchUps {
			// Take in what the other replicas appended, then validate the whole batch anew
			// against it, the refused request of an earlier attempt included.
			catchUps++
			if err = l.catchUp(); err == nil {
				base, excluded = l.state.Load(), map[*op]bool{}
				continue
			}
		}
		if errors.Is(err, errPartial) {
			// Run the batch again without the refused request (its error is set); the others
			// are validated anew, since what they saw before included its first drafts.
			excluded[partial] = true
			continue
		}
		if err != nil {
			if fail.KindOf(err) == fail.Internal {
				err = fail.Unavailablef(err, "the revocation log could not be written; nothing was appended")
			}
			for _, o := range live {
				o.results, o.err = nil, err
			}
			return
		}
		if len(appended) > 0 {
			l.published(next, appended)
		}
		return
	}
}

// refusal wraps an error build returned, which refuses one request and not its batch.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }

// apply appends one draft to tx and ed, or resolves it to an earlier sequence. It returns the
// appended event (nil if nothing was appended), a refusal if build refused the draft, or another
// error if the transaction cannot go on.
func (l *Log) apply(tx store.Tx, ed *feed.Editor, seen map[string]uint64, d draft) (result, *treatyv1.Event, error) {
	if d.requestID != "" {
		if seq, ok := seen[d.requestID]; ok {
			return result{seq: seq, existing: true}, nil, nil
		}
		if raw := tx.Get(bucketRequests, []byte(d.requestID)); raw != nil {
			return result{seq: store.KeyUint64(raw), existing: true}, nil, nil
		}
	}
	ev, err := d.build(ed.State()) // read only; the edit goes on below
	if already, ok := err.(alreadyInForce); ok {
		return result{seq: already.seq, existing: true}, nil, nil
	}
	if err != nil {
		return result{}, nil, refusal{err}
	}
	ev.Sequence = ed.Sequence() + 1
	ev.Time = timestamppb.New(l.cfg.Now())
	ev.RequestId = d.requestID
	if err := ed.Apply(ev); err != nil {
		return result{}, nil, err
	}
	raw, err := proto.Marshal(ev)
	if err != nil {
		return result{}, nil, err
	}
	if err := tx.Put(bucketEvents, store.Uint64Key(ev.Sequence), raw); err != nil {
		return result{}, nil, err
	}
	if d.requestID != "" {
		seen[d.requestID] = ev.Sequence
		if err := tx.Put(bucketRequests, []byte(d.requestID), store.Uint64Key(ev.Sequence)); err != nil {
			return result{}, nil, err
		}
	}
	return result{seq: ev.Sequence}, ev, nil
}

// published makes a committed batch visible: the new state, the recent window, and a wake-up for
// readers waiting on Changed. It is called with l.mu held.
func (l *Log) published(next *feed.State, appended []*treatyv1.Event) {
	l.state.Store(next)
	l.recentMu.Lock()
	// Appending never changes the events readers already hold; trimming copies.
	l.recent = append(l.recent, appended...)
	if over := len(l.recent) - recentEvents; over > 0 {
		l.recent = append([]*treatyv1.Event(nil), l.recent[over:]...)
	}
	l.recentMu.Unlock()
	l.notifyMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.notifyMu.Unlock()
}
