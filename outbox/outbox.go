// Package outbox publishes a service's enforcement changes into the revoker's feed exactly once.
// A change is queued in the same store transaction as the write that causes it, so it cannot be
// lost between the write and the publish; a relay then publishes queued entries in order, with
// idempotency keys the revoker deduplicates on, so a crash between publishing and dequeuing never
// appends an event twice.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Bucket holds the queued entries, keyed by a big-endian counter, the counter itself (kept apart,
// so ids are never reused once the queue drains), and the sequences of the last keepResults
// dequeued entries, so that a writer learns its entry's sequence even when another replica's relay
// published it (several replicas share one store in etcd). Services include it in their store
// schema.
const Bucket = "outbox"

var (
	entryPrefix = []byte("e/")
	counterKey  = []byte("counter")
)

func entryKey(id uint64) []byte  { return append([]byte("e/"), store.Uint64Key(id)...) }
func resultKey(id uint64) []byte { return append([]byte("r/"), store.Uint64Key(id)...) }

// batchSize bounds how many entries one publish call carries.
const batchSize = 256

// Add queues ev for publication inside tx and returns the entry's id, to pass to Relay.Wait once
// tx has committed. source names the publishing service; it prefixes the idempotency key, which is
// otherwise random so that it stays unique even if this store is ever recreated.
func Add(tx store.Tx, source string, ev *treatyv1.Event) (uint64, error) {
	id := store.KeyUint64(tx.Get(Bucket, counterKey)) + 1
	if err := tx.Put(Bucket, counterKey, store.Uint64Key(id)); err != nil {
		return 0, fmt.Errorf("outbox: advance counter: %w", err)
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	entry := &treatyv1.PublishEntry{RequestId: fmt.Sprintf("%s-%d-%s", source, id, hex.EncodeToString(nonce)), Event: ev}
	raw, err := proto.Marshal(entry)
	if err != nil {
		return 0, fmt.Errorf("outbox: encode entry: %w", err)
	}
	if err := tx.Put(Bucket, entryKey(id), raw); err != nil {
		return 0, fmt.Errorf("outbox: queue entry: %w", err)
	}
	return id, nil
}

// Publisher appends entries to the feed, returning each entry's sequence in order. Publishing an
// entry whose request id was published before returns the original sequence.
type Publisher interface {
	Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error)
}

// Relay publishes queued entries in order and lets writers wait for theirs.
//
// Several relays may share one store (replicas of a service on etcd). Each publishes whatever is
// queued, whoever queued it; order holds because a relay publishes a batch that starts at the
// oldest queued entry and dequeues it only once the revoker has appended it, so every entry older
// than a batch has a sequence before the batch is published, and the revoker gives an entry
// published twice (by two relays whose batches overlap) its original sequence. Whichever relay
// dequeues an entry records its sequence in the store; the others' waiters find it there.
type Relay struct {
	store store.Store
	pub   Publisher
	log   *slog.Logger
	// shared is set when other processes may write the store (it is a store.Watcher): waiters
	// then also look for their entry's sequence in the store.
	shared bool

	kick chan struct{}

	mu      sync.Mutex
	done    map[uint64]uint64 // entry id -> sequence, for recently published entries
	order   []uint64          // ids in done, oldest first, to bound its size
	changed chan struct{}     // closed and replaced whenever done grows
	lastErr error             // the last publish failure, until a publish succeeds
}

// keepResults bounds how many published results are remembered for late waiters, in memory and
// in the store.
const keepResults = 4096

// NewRelay returns a relay for the outbox in st. Call Run to start it.
func NewRelay(st store.Store, pub Publisher, log *slog.Logger) *Relay {
	_, shared := st.(store.Watcher)
	return &Relay{
		store: st, pub: pub, log: log, shared: shared,
		kick:    make(chan struct{}, 1),
		done:    make(map[uint64]uint64),
		changed: make(chan struct{}),
	}
}

// Kick asks the relay to publish now rather than at its next retry.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, retrying with backoff while the revoker is unreachable. On a
// store other processes write, it also watches the outbox: another replica's writer queued an
// entry (publish it too, in case that replica is gone) or its relay dequeued one (a waiter here
// may find its sequence).
func (r *Relay) Run(ctx context.Context) {
	if w, ok := r.store.(store.Watcher); ok {
		changes := w.Watch(ctx, Bucket)
		watching := make(chan struct{})
		defer func() { <-watching }() // the channel closes once ctx ends
		go func() {
			defer close(watching)
			for range changes {
				r.mu.Lock()
				r.wake()
				r.mu.Unlock()
				r.Kick()
			}
		}()
	}
	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		n, err := r.publishOnce(ctx)
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
		wait := time.Duration(0)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if fail.KindOf(err) == fail.Invalid {
				// Outbox order is enforcement order, so a refused entry holds back every later
				// one (a later block included) until someone fixes it: say so loudly.
				r.log.Error("outbox: the revoker refuses the oldest queued change; later changes are held back until it is fixed",
					"err", err, "retry_in", backoff)
			} else {
				r.log.Warn("outbox: publish to the revoker failed; will retry", "err", err, "retry_in", backoff)
			}
			wait = backoff
			backoff = min(backoff*2, maxBackoff)
		case n == batchSize:
			backoff = minBackoff
			continue // more may be queued
		default:
			backoff = minBackoff
			wait = time.Second // queued entries are always kicked; this is a safety net
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-time.After(wait):
		}
	}
}

// publishOnce publishes up to one batch of queued entries and dequeues them.
func (r *Relay) publishOnce(ctx context.Context) (int, error) {
	var ids []uint64
	var entries []*treatyv1.PublishEntry
	err := r.store.View(func(tx store.Tx) error {
		return tx.Scan(Bucket, entryPrefix, nil, func(k, v []byte) (bool, error) {
			id := store.KeyUint64(k[len(entryPrefix):])
			e := new(treatyv1.PublishEntry)
			if err := proto.Unmarshal(v, e); err != nil {
				return false, fmt.Errorf("outbox: decode entry %d: %w", id, err)
			}
			ids = append(ids, id)
			entries = append(entries, e)
			return len(ids) < batchSize, nil
		})
	})
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	seqs, err := r.pub.Publish(cctx, entries)
	cancel()
	if err != nil {
		return 0, err
	}
	if len(seqs) != len(entries) {
		return 0, fmt.Errorf("outbox: revoker returned %d sequences for %d entries", len(seqs), len(entries))
	}
	err = r.store.Update(func(tx store.Tx) error { return dequeue(tx, ids, seqs) })
	if err != nil {
		// Published but still queued: the next attempt republishes with the same request ids and
		// the revoker answers with the original sequences.
		return 0, fmt.Errorf("outbox: dequeue published entries: %w", err)
	}
	r.mu.Lock()
	for i, id := range ids {
		r.done[id] = seqs[i]
		r.order = append(r.order, id)
	}
	for len(r.order) > keepResults {
		delete(r.done, r.order[0])
		r.order = r.order[1:]
	}
	r.wake()
	r.mu.Unlock()
	return len(ids), nil
}

// dequeue deletes the published entries ids (in id order, with sequences seqs) that are still
// queued, and records their sequences for waiters elsewhere. Another relay may have dequeued some
// of them since they were read (it published them too, and recorded the same sequences): those
// are left alone. Each entry dequeued lets the result keepResults ids older go, which keeps the
// last keepResults results, as ids are dequeued once each and without gaps.
func dequeue(tx store.Tx, ids, seqs []uint64) error {
	// One range read, rather than a read per entry (each an etcd round trip), finds which are
	// still queued; a concurrent dequeue of any of them makes this transaction retry.
	queued := make(map[uint64]bool, len(ids))
	last := ids[len(ids)-1]
	err := tx.Scan(Bucket, entryPrefix, entryKey(ids[0]), func(k, _ []byte) (bool, error) {
		id := store.KeyUint64(k[len(entryPrefix):])
		queued[id] = true
		return id < last, nil
	})
	if err != nil {
		return fmt.Errorf("outbox: read queued entries: %w", err)
	}
	for i, id := range ids {
		if !queued[id] {
			continue
		}
		if err := tx.Delete(Bucket, entryKey(id)); err != nil {
			return err
		}
		if err := tx.Put(Bucket, resultKey(id), store.Uint64Key(seqs[i])); err != nil {
			return err
		}
		if id > keepResults {
			if err := tx.Delete(Bucket, resultKey(id-keepResults)); err != nil {
				return err
			}
		}
	}
	return nil
}

// wake tells waiters to look again. r.mu must be held.
func (r *Relay) wake() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Wait kicks the relay and waits until entry id is published, returning its feed sequence. If ctx
// ends first it returns an Unavailable error: the change is recorded durably and will still be
// published once the revoker is reachable.
func (r *Relay) Wait(ctx context.Context, id uint64) (uint64, error) {
	r.Kick()
	for {
		r.mu.Lock()
		seq, ok := r.done[id]
		changed, lastErr := r.changed, r.lastErr
		r.mu.Unlock()
		if ok {
			return seq, nil
		}
		if r.shared {
			// Another replica's relay may have published and dequeued it. Reading after taking
			// changed means a dequeue this read misses closes changed (Run's watch), so the
			// wait below cannot sleep through it.
			seq, err := r.result(id)
			if err != nil {
				lastErr = err
			} else if seq != 0 {
				return seq, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			cause := ctx.Err()
			if lastErr != nil {
				cause = lastErr
			}
			return 0, fail.Unavailablef(cause, "the change is recorded durably, but the revoker has not confirmed it yet; it will be published, in order, as soon as the revoker is reachable")
		}
	}
}

// result returns the sequence a relay recorded for entry id, or 0 if none has (yet).
func (r *Relay) result(id uint64) (uint64, error) {
	var seq uint64
	err := r.store.View(func(tx store.Tx) error {
		if v := tx.Get(Bucket, resultKey(id)); v != nil {
			seq = store.KeyUint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: read the result of entry %d: %w", id, err)
	}
	return seq, nil
}

// Pending reports how many entries wait to be published.
func (r *Relay) Pending() (int, error) {
	n := 0
	err := r.store.View(func(tx store.Tx) error {
		return tx.Scan(Bucket, entryPrefix, nil, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	return n, err
}
