package decisionlog

import (
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// Retry delays of the writer after the store refused a batch: the batch stays in hand (and the
// queue fills, so denies wait) until the store takes it.
const (
	minRetryDelay = 50 * time.Millisecond
	maxRetryDelay = 5 * time.Second
)

// retentionChunk bounds the entries one retention transaction deletes, so a large backlog of
// old entries never holds the writer (and the decisions queued behind it) for long.
const retentionChunk = 10_000

// run is the writer: it takes what is queued, commits it in batches, publishes it to tails, and
// applies retention between batches. It is the only writer of the store.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]pending, 0, l.cfg.BatchSize)
	entries := make([]Entry, 0, l.cfg.BatchSize)
	retention := time.NewTimer(0) // once at start, then every interval
	defer retention.Stop()
	var lastCommit time.Time
	for {
		select {
		case p := <-l.queue:
			l.gather(lastCommit)
			lastCommit = time.Now()
			batch = l.fill(append(batch, p))
			entries = l.commit(batch, entries, false)
			batch = batch[:0]
		case <-retention.C:
			next := l.cfg.RetentionInterval
			if more := l.retain(); more {
				next = 0 // keep deleting, after the writes queued meanwhile
			}
			retention.Reset(next)
		case <-l.stop:
			// Close holds no Record in flight any more: what is queued now is all there is.
			for len(l.queue) > 0 {
				batch = l.fill(batch)
				entries = l.commit(batch, entries, true)
				batch = batch[:0]
			}
			return
		}
	}
}

// gather waits, when the last commit started less than CommitInterval ago, until it is that old,
// so that the decisions arriving meanwhile join the next batch: a commit costs about the same for
// one decision as for a thousand. It does not wait when a full batch is already queued, nor once
// Close has begun. Decisions wait in the queue meanwhile, which holds QueueSize of them: a deny
// only waits for room if more than that arrive within one interval.
func (l *Log) gather(lastCommit time.Time) {
	wait := l.cfg.CommitInterval - time.Since(lastCommit)
	if wait <= 0 || len(l.queue)+1 >= l.cfg.BatchSize {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.stop:
	}
}

// fill adds queued decisions to batch without waiting, up to the batch size.
func (l *Log) fill(batch []pending) []pending {
	for len(batch) < cap(batch) {
		select {
		case p := <-l.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// commit writes a batch in one fsync'd transaction, retrying until the store takes it (or, when
// closing, trying once and counting the batch lost), then hands it to the tails.
func (l *Log) commit(batch []pending, entries []Entry, closing bool) []Entry {
	entries = entries[:0]
	for i := range batch {
		entries = append(entries, batch[i].entry(l.seq+1+uint64(i)))
	}
	for delay := minRetryDelay; ; delay = min(2*delay, maxRetryDelay) {
		l.enc.reset() // no transaction holds its slices any more
		err := l.store.Update(func(tx store.Tx) error {
			for i := range entries {
				if err := put(tx, &entries[i], &l.enc); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			break
		}
		if closing {
			l.lostCount.Add(uint64(len(entries)))
			l.lost = fmt.Errorf("decisionlog: write the last %d decisions at close: %w", len(entries), err)
			l.log.Error("decisions lost at close: the store refused them", "count", len(entries), "err", err)
			return entries
		}
		l.log.Error("cannot write decisions; retrying (denies wait meanwhile)", "count", len(entries), "retry_in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-l.stop:
			closing = true
		}
	}
	l.seq += uint64(len(entries))
	l.written.Add(uint64(len(entries)))
	l.tail.publish(entries, l.seq)
	clear(batch) // drop references to the decisions' strings
	return entries
}

// retain deletes entries past the age or count bound, oldest first, at most retentionChunk at a
// time, and reports whether more remain to delete.
func (l *Log) retain() (more bool) {
	var cutoff time.Time
	if l.cfg.MaxAge > 0 {
		cutoff = l.cfg.Now().Add(-l.cfg.MaxAge)
	}
	var doomed []Entry
	err := l.store.View(func(tx store.Tx) error {
		var excess uint64
		if l.cfg.MaxRecords > 0 {
			if first := firstSeq(tx); first > 0 && l.seq-first+1 > uint64(l.cfg.MaxRecords) {
				excess = l.seq - first + 1 - uint64(l.cfg.MaxRecords)
			}
		}
		return tx.Scan(recordsBucket, nil, nil, func(_, v []byte) (bool, error) {
			if len(doomed) == retentionChunk {
				more = true
				return false, nil
			}
			e, err := decode(v)
			if err != nil {
				return false, err
			}
			if uint64(len(doomed)) >= excess && (cutoff.IsZero() || !e.Time.Before(cutoff)) {
				return false, nil
			}
			doomed = append(doomed, e)
			return true, nil
		})
	})
	if err == nil && len(doomed) > 0 {
		// The writer is the store's only writer, so what the read found is still there.
		err = l.store.Update(func(tx store.Tx) error {
			for i := range doomed {
				if err := remove(tx, &doomed[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		l.log.Error("retention failed; retrying at the next interval", "err", err)
		return false
	}
	n := len(doomed)
	l.deleted.Add(uint64(n))
	return more
}

// firstSeq returns the oldest entry's sequence, or 0 when the log is empty.
func firstSeq(tx store.Tx) (first uint64) {
	tx.Scan(recordsBucket, nil, nil, func(k, _ []byte) (bool, error) {
		first = store.KeyUint64(k)
		return false, nil
	})
	return first
}
