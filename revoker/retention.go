package revoker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Retention.
//
// An event can matter to a subscriber replaying the log only while a credential it could affect
// may still be presented, and no credential lives longer than Config.MaxCredentialTTL (the global
// maximum, never an integration's current setting, which may have been longer once). So an event
// older than that, plus RetentionMargin for clocks and in-flight credentials, is deleted from the
// events bucket. What it did lives on in the materialized state saved beside the log (blocks,
// watermarks, key revocations, the global watermark, denylisted credentials until they expire),
// which Snapshot hands out: a subscriber behind retention gets an OUT_OF_RANGE answer from Read,
// resyncs from a snapshot, and subscribes after the snapshot's sequence.
//
// The newest event is never deleted, so the log's head stays readable and a reopened log still
// finds its head among its events.
//
// Request ids of compacted events are deleted with them. A retry that arrives after the retention
// (hours, where clients and outbox relays retry within seconds) is no retry any client makes; the
// original event could no longer be read to check that the id names the same target; and kept ids
// would grow without bound. Such a late request is judged against the state like a new one: a
// revocation or block already in force still answers with its earlier sequence, a restore of
// something no longer blocked is refused.
//
// Compaction also forgets denylisted credentials whose expiry (plus the margin) has passed: they
// can only ever deny as expired.

var keyRetainedAfter = []byte("retained_after")

const (
	// DefaultRetentionMargin is how much longer than the maximum credential lifetime events are
	// kept by default.
	DefaultRetentionMargin = time.Hour
	// DefaultCompactEvery is how often RunCompaction compacts by default.
	DefaultCompactEvery = 10 * time.Minute
	// compactChunk bounds the events one compaction transaction deletes, and separately the
	// expired denylist entries it forgets, so that appends, which wait for it, never wait long,
	// and so that the transaction stays within etcd's limit (etcdstore.RequiredTxnOps): an event
	// deleted is up to two writes and a read compared at commit, an entry forgotten one write.
	compactChunk = 2048
)

// RetainedAfter returns the lowest sequence the log can replay after: Read(after, ...) with a
// lower after is OUT_OF_RANGE. It is 0 until something was compacted.
func (l *Log) RetainedAfter() uint64 { return l.retained.Load() }

func outOfRange(after, retained uint64) error {
	return fail.OutOfRangef("events up to sequence %d were compacted (they are older than the maximum credential lifetime), so the log cannot replay after %d; resync from a Snapshot, then subscribe after its sequence", retained, after)
}

// Compact deletes the events older than the retention (MaxCredentialTTL plus RetentionMargin
// before now) and their request ids, and forgets denylisted credentials that expired more than
// RetentionMargin ago. It returns how many events it deleted. It works in chunks, so appends wait
// for it only briefly, and stops early when ctx ends.
func (l *Log) Compact(ctx context.Context) (removed int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, more, err := l.compactChunk()
		removed += n
		if err != nil || !more {
			return removed, err
		}
	}
}

// compactChunk deletes up to compactChunk events and forgets up to compactChunk expired denylist
// entries; more reports whether more of either may be due.
func (l *Log) compactChunk() (removed int, more bool, err error) {
	now := l.cfg.Now()
	cutoff := now.Add(-l.cfg.MaxCredentialTTL - l.cfg.RetentionMargin)
	l.mu.Lock()
	defer l.mu.Unlock()
	base := l.state.Load()
	head := base.Sequence()
	retained := l.retained.Load()
	next := base
	attempt := func(tx store.Tx) error {
		removed, more, next, retained = 0, false, base, l.retained.Load()
		// Forgetting saves the state, which must then be the store's: another replica may have
		// appended since (follow.go).
		if err := l.checkHead(tx, head); err != nil {
			return err
		}
		var gone []*treatyv1.Event
		err := tx.Scan(bucketEvents, nil, store.Uint64Key(retained+1), func(k, v []byte) (bool, error) {
			if store.KeyUint64(k) >= head { // the newest event stays
				return false, nil
			}
			ev := new(treatyv1.Event)
			if err := proto.Unmarshal(v, ev); err != nil {
				return false, fmt.Errorf("decode event %d: %w", store.KeyUint64(k), err)
			}
			if !ev.GetTime().AsTime().Before(cutoff) {
				return false, nil
			}
			gone = append(gone, ev)
			more = len(gone) == compactChunk
			return !more, nil
		})
		if err != nil {
			return err
		}
		for _, ev := range gone {
			if err := tx.Delete(bucketEvents, store.Uint64Key(ev.GetSequence())); err != nil {
				return err
			}
			// Only the id's own event takes it along: an id that resolved to an earlier event
			// points elsewhere.
			if id := ev.GetRequestId(); id != "" && store.KeyUint64(tx.Get(bucketRequests, []byte(id))) == ev.GetSequence() {
				if err := tx.Delete(bucketRequests, []byte(id)); err != nil {
					return err
				}
			}
			retained = ev.GetSequence()
		}
		removed = len(gone)
		if removed > 0 {
			if err := tx.Put(bucketLog, keyRetainedAfter, store.Uint64Key(retained)); err != nil {
				return err
			}
		}
		ed := base.Edit()
		if n := ed.ForgetExpired(now.Add(-l.cfg.RetentionMargin), compactChunk); n > 0 {
			more = more || n == compactChunk
			changes := ed.Changes()
			next = ed.State()
			return changes.Save(tx)
		}
		return nil
	}
	for catchUps := 0; ; catchUps++ {
		err = l.st.Update(attempt)
		if !errors.Is(err, errBehind) || catchUps == maxCatchUps {
			break
		}
		if err = l.catchUp(); err != nil {
			break
		}
		base = l.state.Load()
		head = base.Sequence()
	}
	if err != nil {
		return 0, false, fmt.Errorf("compact revocation log: %w", err)
	}
	if next != base {
		l.state.Store(next)
	}
	if removed > 0 {
		l.retained.Store(max(retained, l.retained.Load()))
		l.recentMu.Lock()
		// Readers may hold the old window; trimming copies.
		if i := len(l.recent) - int(head-retained); i > 0 {
			l.recent = append([]*treatyv1.Event(nil), l.recent[min(i, len(l.recent)):]...)
		}
		l.recentMu.Unlock()
	}
	return removed, more, nil
}

// RunCompaction compacts the log every Config.CompactEvery until ctx ends; the server runs it in
// a goroutine beside the log. Failures are logged and retried at the next tick: compaction only
// saves space, and nothing depends on it having run. On a store that other replicas write too (a
// store.Watcher), it also follows them (Follow) until ctx ends, so the server's one background
// loop beside the log keeps it current.
func (l *Log) RunCompaction(ctx context.Context) {
	if _, ok := l.st.(store.Watcher); ok {
		followed := make(chan struct{})
		go func() {
			defer close(followed)
			l.Follow(ctx)
		}()
		defer func() { <-followed }()
	}
	t := time.NewTicker(l.cfg.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := l.Compact(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			l.cfg.Logger.Warn("revoker: compaction failed; retrying at the next tick", "err", err)
		case n > 0:
			l.cfg.Logger.Info("revoker: compacted the log", "events", n, "retained_after", l.RetainedAfter())
		}
	}
}
