package revoker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Replicas.
//
// Several logs (one per revoker replica) may share one store that several processes write (etcd,
// a store.Watcher). Each keeps the state and the newest events in memory and appends from them,
// so each must know every event the others appended before it appends the next: otherwise two
// replicas would both write sequence N. So every commit (and every compaction that saves the
// state) first reads the store's head (the last key of the events bucket) inside its transaction:
//
//   - equal to the memory's head: the transaction goes on. Having read the head, it conflicts
//     with any other replica's append that commits first, and the store runs it again, when it
//     finds the store ahead;
//   - ahead: the transaction is abandoned (errBehind), the log catches up (catchUp: it reads the
//     events after its head from the store, applies them in order and publishes them to its own
//     readers as if it had appended them), and the batch is validated and appended anew against
//     the new head. A request id another replica appended is found in the requests bucket then,
//     and resolves to that replica's sequence;
//   - behind: the store was replaced (restored from a backup) under the running log, whose memory
//     can no longer be trusted: the append is refused. catchUp also compares the store's epoch
//     with the log's, and once it differs every append is refused until the process restarts
//     and reloads.
//
// The commit reads the epoch too, so that a log restored under a new epoch (Reepoch) while a
// replica runs is never appended to from that replica's old memory. With bbolt only this process
// writes, both always match, and the check costs one Get and one Last.
//
// A replica must also learn of the others' appends while it appends nothing itself, so its
// subscribers see them within milliseconds: Follow catches up whenever the store's watch says the
// events bucket changed, and every followEvery as a safety net.

// errBehind abandons a transaction that found events in the store after the memory's head.
var errBehind = errors.New("revoker: the store holds events this replica has not seen")

// followEvery is how often Follow catches up without a notification, in case a watch stalls
// without failing.
const followEvery = time.Second

// maxCatchUps bounds how many times one batch catches up with other replicas before it gives up.
const maxCatchUps = 1000

// checkHead compares the store's epoch and head, read in tx, with the memory's.
func (l *Log) checkHead(tx store.Tx, memory uint64) error {
	if l.replaced.Load() {
		return errReplaced
	}
	if epoch := string(tx.Get(bucketLog, keyEpoch)); epoch != l.epoch {
		// Restored under a new epoch (Reepoch) while this replica ran: appending now would
		// save the old epoch into the state. Not remembered here (a failed read also returns
		// nothing); catchUp remembers it.
		return fmt.Errorf("%w (the store's epoch is %q, this replica's %q)", errReplaced, epoch, l.epoch)
	}
	k, _ := tx.Last(bucketEvents)
	switch head := store.KeyUint64(k); {
	case head > memory:
		return errBehind
	case head < memory:
		// Not remembered: a store that failed the read returns nothing here too (and its
		// Update then fails with the read's error, not this one).
		return fmt.Errorf("%w (the store's log ends at %d, this replica's at %d)", errReplaced, head, memory)
	}
	return nil
}

// errReplaced refuses appends once the store was found replaced under the running log.
var errReplaced = errors.New("revoker: the revocation log's store was restored or replaced while this replica ran (its head or epoch changed); restart the replica")

// catchUp brings the memory up to the store's head: it applies the events other replicas
// appended, in order, and publishes them to this log's readers. It is idempotent (nothing to do
// when the memory is at the head) and is called with l.mu held.
func (l *Log) catchUp() error {
	if l.replaced.Load() {
		return errReplaced
	}
	base := l.state.Load()
	var (
		evs      []*treatyv1.Event
		epoch    string
		retained uint64
		reload   *feed.State
	)
	err := l.st.View(func(tx store.Tx) error {
		evs, reload = nil, nil
		epoch = string(tx.Get(bucketLog, keyEpoch))
		retained = store.KeyUint64(tx.Get(bucketLog, keyRetainedAfter))
		if epoch != l.epoch {
			return nil
		}
		err := tx.Scan(bucketEvents, nil, store.Uint64Key(base.Sequence()+1), func(k, v []byte) (bool, error) {
			ev := new(treatyv1.Event)
			if err := proto.Unmarshal(v, ev); err != nil {
				return false, fmt.Errorf("decode event %d: %w", store.KeyUint64(k), err)
			}
			evs = append(evs, ev)
			return true, nil
		})
		if err != nil {
			return err
		}
		if len(evs) > 0 && evs[0].GetSequence() != base.Sequence()+1 {
			// Another replica compacted past this one's head: the events it missed are gone,
			// but their effect is in the state saved beside them.
			reload, err = feed.Load(tx)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("catch up with the revocation log's other replicas: %w", err)
	}
	if epoch != l.epoch {
		l.replaced.Store(true)
		l.cfg.Logger.Error("revoker: the store's log has another epoch; it was restored under this replica; restart this replica",
			"store_epoch", epoch, "epoch", l.epoch)
		return errReplaced
	}
	if retained > l.retained.Load() {
		l.retained.Store(retained) // another replica compacted
	}
	switch {
	case reload != nil:
		l.cfg.Logger.Warn("revoker: this replica fell behind the other replicas' compaction; reloaded the state",
			"from", base.Sequence(), "to", reload.Sequence())
		l.recentMu.Lock()
		l.recent = nil // the window must stay contiguous up to the head: readers go to the store
		l.recentMu.Unlock()
		l.published(reload, nil)
	case len(evs) > 0:
		ed := base.Edit()
		for _, ev := range evs {
			if err := ed.Apply(ev); err != nil {
				return fmt.Errorf("catch up with the revocation log's other replicas: %w", err)
			}
		}
		l.published(ed.State(), evs)
	}
	return nil
}

// CatchUp reads the events other replicas appended to the shared store since this log last did,
// and publishes them to its readers. Follow calls it; a log alone on its store never needs it.
func (l *Log) CatchUp() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.catchUp()
}

// Follow keeps the log up to date with the other replicas that append to its store, until ctx
// ends or the store is closed: it catches up whenever the store says the events changed, and every
// second in case a notification is lost. It returns at once for a store that is not a
// store.Watcher (bbolt), which only this process writes. RunCompaction runs it, so a server that
// runs RunCompaction beside the log needs nothing else.
func (l *Log) Follow(ctx context.Context) {
	if w, ok := l.st.(store.Watcher); ok {
		store.Follow(ctx, w, bucketEvents, followEvery, followEvery, l.CatchUp, l.cfg.Logger, "the revocation log's other replicas")
	}
}
