package pdp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

const (
	// minBackoff and maxBackoff bound the wait between reconnection attempts, which doubles after
	// each attempt that made no progress. The cap stays well under the default staleness bound, so
	// a revoker that comes back is followed again within seconds.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 3 * time.Second
	// maxBatch bounds how many received messages are folded into one state, one store transaction
	// and one swap. Under a burst, batching keeps the follower ahead of the feed (one fsync per
	// batch, not per event); when idle, a batch is the one message that arrived.
	maxBatch = 1024
	// watchdogInterval is how often the status is recomputed from the clock, so that a follower
	// whose stream went silent turns stale on time.
	watchdogInterval = 100 * time.Millisecond
	// cacheSweepInterval is how often the watchdog drops expired tokens from the verified-token
	// cache. Lookups never return them anyway; sweeping only returns their memory.
	cacheSweepInterval = 10 * time.Second
)

// errResubscribe ends a subscription so that the follower subscribes again at once, from the
// sequence of a state it just switched to.
var errResubscribe = errors.New("pdp: resubscribe from the new state")

// Run follows the feed until ctx ends, then returns nil. Errors (an unreachable revoker, a broken
// stream, a gap, a cache write failure) are logged and retried with capped exponential backoff;
// meanwhile the PDP reports syncing, then stale. Run may be called once.
func (p *PDP) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("pdp: Run may be called only once")
	}
	// Staleness counts from now, not from New: until the first catch-up the PDP is syncing, and
	// stale only if that takes longer than the bound.
	p.caughtUpAt.Store(p.monotonic())
	var wg sync.WaitGroup
	wg.Go(func() { p.watchdog(ctx) })
	defer wg.Wait()

	backoff := minBackoff
	for {
		progressed, err := p.follow(ctx)
		// Whatever ended the subscription, the PDP is no longer following: it reports syncing until
		// the next subscription catches up (and stale if that takes longer than the bound).
		p.synced.Store(false)
		p.refreshStatus()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errResubscribe) {
			backoff = minBackoff
			continue
		}
		if progressed {
			backoff = minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		p.log.Warn("feed subscription ended; reconnecting", "err", err, "in", wait, "applied", p.Applied())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func (p *PDP) watchdog(ctx context.Context) {
	t := time.NewTicker(min(watchdogInterval, p.cfg.StalenessBound/3))
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case now := <-t.C:
			p.refreshStatus()
			if p.tokens != nil && now.Sub(lastSweep) >= cacheSweepInterval {
				lastSweep = now
				p.tokens.sweep(p.cfg.Now().Unix())
			}
		case <-ctx.Done():
			return
		}
	}
}

// session is what one subscription has learnt so far.
type session struct {
	started  bool // the opening heartbeat arrived
	head     uint64
	haveHead bool
}

// follow runs one subscription until it fails or ctx ends. progressed reports whether it applied
// events or caught up, which resets the reconnection backoff.
func (p *PDP) follow(ctx context.Context) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := p.Applied()
	stream, err := p.cfg.Source.Subscribe(sctx, after)
	if fail.KindOf(err) == fail.OutOfRange {
		return false, p.resync(ctx, nil)
	}
	if err != nil {
		return false, fmt.Errorf("subscribe after %d: %w", after, err)
	}

	// A receiver goroutine feeds a buffer, so that whatever has arrived by the time the previous
	// batch is applied becomes the next batch.
	msgs := make(chan *treatyv1.SubscribeResponse, maxBatch)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); feed.Receive(sctx, stream, msgs, recvErr) }()
	defer func() { cancel(); <-done }()

	// A stream that makes no progress for a whole staleness bound (no event applied, and no
	// heartbeat that finds the PDP caught up) is presumed dead or stuck, even if the connection
	// looks open: reconnect. Progress is saved, so a reconnection loses nothing.
	idle := time.NewTimer(p.cfg.StalenessBound)
	defer idle.Stop()
	var sess session
	batch := make([]*treatyv1.SubscribeResponse, 0, 64)
	for {
		batch = batch[:0]
		var streamErr error
		select {
		case m := <-msgs:
			batch = append(batch, m)
		case streamErr = <-recvErr:
			// The receiver queued every message it got before the error; apply them first.
		case <-idle.C:
			return progressed, fmt.Errorf("no progress on the feed for %s (applied %d, head %d)", p.cfg.StalenessBound, p.Applied(), p.Head())
		case <-ctx.Done():
			return progressed, nil
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			prog, err := p.apply(sctx, &sess, batch)
			if prog {
				idle.Reset(p.cfg.StalenessBound)
				progressed = true
			}
			if err != nil {
				return progressed, err
			}
		}
		if fail.KindOf(streamErr) == fail.OutOfRange {
			// The log compacted the events after what was applied (the PDP was away for longer
			// than the retention): only a snapshot can bring it up to date.
			return progressed, p.resync(ctx, nil)
		}
		if streamErr != nil {
			return progressed, fmt.Errorf("feed stream after %d: %w", p.Applied(), streamErr)
		}
	}
}

// apply folds one batch of messages into one new state, saved in one store transaction and swapped
// in at once, then records whether the PDP has caught up with the announced head.
func (p *PDP) apply(ctx context.Context, sess *session, batch []*treatyv1.SubscribeResponse) (progressed bool, err error) {
	p.stats.contact.Store(p.monotonic()) // the revoker spoke: the age of this is the feed's silence
	cur := p.state.Load()
	seq := cur.Sequence()
	var (
		ed       *feed.Editor
		applyErr error
	)
loop:
	for _, m := range batch {
		switch msg := m.GetMessage().(type) {
		case *treatyv1.SubscribeResponse_Heartbeat:
			hb := msg.Heartbeat
			if !sess.started && cur.Epoch() == "" && cur.Sequence() == 0 {
				// A new cache: adopt the feed's epoch, so that a later replacement is detected.
				if cur, err = p.adopt(hb.GetEpoch()); err != nil {
					return progressed, err
				}
			}
			sess.started = true
			if hb.GetEpoch() != cur.Epoch() || hb.GetHeadSequence() < seq {
				// The log was replaced (new epoch), or rolled back below what was applied. Any
				// events of this batch come from the same replaced log: drop them.
				return progressed, p.resync(ctx, hb)
			}
			sess.head, sess.haveHead = hb.GetHeadSequence(), true
			p.head.Store(sess.head)
		case *treatyv1.SubscribeResponse_Event:
			if !sess.started {
				applyErr = errors.New("the feed stream did not open with a heartbeat")
				break loop
			}
			ev := msg.Event
			if ev.GetSequence() <= seq {
				continue // applied already
			}
			if ed == nil {
				ed = cur.Edit()
			}
			if err := ed.Apply(ev); err != nil {
				applyErr = err // a gap: keep what was applied and resubscribe after it
				break loop
			}
			seq = ev.GetSequence()
		}
	}
	var next *feed.State
	if ed != nil && seq > cur.Sequence() {
		changes := ed.Changes()
		if err := p.cfg.Store.Update(changes.Save); err != nil {
			// Nothing is swapped: the cache must never fall behind the state it would be rebuilt
			// into, and the follower resumes from the last saved sequence.
			return progressed, fmt.Errorf("pdp: cache events up to %d: %w", seq, err)
		}
		next = ed.State()
		progressed = true
	}
	// Store the state, then record readiness, then wake the decisions waiting for a sequence: so
	// that Ready always implies the announced head is applied, and a decision that waited for its
	// min_sequence after a reconnect is made on the new state rather than denied as syncing.
	if next != nil {
		p.state.Store(next)
	}
	if sess.haveHead && seq >= sess.head {
		p.caughtUp()
		progressed = true
	}
	if next != nil {
		p.wake()
	}
	return progressed, applyErr
}

// adopt starts an empty cache on the feed's epoch.
func (p *PDP) adopt(epoch string) (*feed.State, error) {
	s := feed.Empty(epoch)
	if err := p.cfg.Store.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		return nil, fmt.Errorf("pdp: cache the feed's epoch: %w", err)
	}
	p.swap(s)
	return s, nil
}

// resync switches to the source's snapshot after the feed was replaced, keeping every revocation
// the old state had (see keepRevocations), or, with hb nil, after the feed answered that it no
// longer holds the events after what was applied (compacted). Until the switch is made the PDP
// denies as stale.
func (p *PDP) resync(ctx context.Context, hb *treatyv1.Heartbeat) error {
	old := p.state.Load()
	if !p.resyncing.Swap(true) {
		if hb == nil {
			p.log.Warn("the feed compacted the events after what was applied; denying as stale while resyncing from a snapshot",
				"cached_epoch", old.Epoch(), "applied", old.Sequence())
		} else {
			p.log.Warn("the feed was replaced; denying as stale while resyncing from a snapshot",
				"cached_epoch", old.Epoch(), "applied", old.Sequence(), "feed_epoch", hb.GetEpoch(), "feed_head", hb.GetHeadSequence())
		}
	}
	p.refreshStatus()
	snap, err := p.cfg.Source.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("pdp: fetch a snapshot to resync: %w", err)
	}
	merged, kept := snap, 0
	if hb != nil || snap.Epoch() != old.Epoch() || snap.Sequence() < old.Sequence() {
		merged, kept = keepRevocations(old, snap)
	}
	// Otherwise the feed compacted past what was applied and is the same log, further on: the
	// snapshot folds every event the old state did and the ones since, restores included, so it
	// is taken as it is (merging would bring back a block the log has since lifted).
	if err := p.cfg.Store.Update(func(tx store.Tx) error { return feed.SaveAll(tx, merged) }); err != nil {
		return fmt.Errorf("pdp: cache the resynced state: %w", err)
	}
	p.swap(merged)
	p.synced.Store(false) // syncing until the new subscription catches up
	p.resyncing.Store(false)
	p.refreshStatus()
	p.log.Warn("resynced from a snapshot; revocations of the replaced feed are kept",
		"epoch", merged.Epoch(), "sequence", merged.Sequence(), "revocations_kept", kept)
	return errResubscribe
}
