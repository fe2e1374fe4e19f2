package ssf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// errResync ends a subscription so that the next one starts from a moved cursor.
var errResync = errors.New("ssf: cursor moved; resubscribing")

// follow subscribes to the feed from the cursor and queues SETs, resubscribing with backoff
// after any failure, until ctx ends.
func (t *Transmitter) follow(ctx context.Context) {
	backoff := t.cfg.RetryMin
	for ctx.Err() == nil {
		err := t.followOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errResync):
			backoff = t.cfg.RetryMin
			continue
		case fail.KindOf(err) == fail.OutOfRange && !t.uncheckedOnce && t.checked:
			// The event before the cursor, read only to compare marks, may be the one compacted
			// away: subscribe from the cursor itself before concluding anything was lost.
			t.uncheckedOnce = true
			continue
		case fail.KindOf(err) == fail.OutOfRange:
			if jerr := t.skipCompacted(ctx); jerr != nil {
				t.log.Warn("ssf: cannot resync past the compacted part of the feed", "err", jerr)
			} else {
				continue
			}
		default:
			t.log.Warn("ssf: feed subscription ended; retrying", "err", err, "retry_in", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, t.cfg.RetryMax)
	}
}

// followOnce runs one subscription. When the cursor knows the event it stopped at, the
// subscription starts one event earlier and compares that event with the cursor's mark: a
// revoker log restored from an older copy and appended to since has the same epoch and may
// already be past the cursor, and only its content tells it apart.
func (t *Transmitter) followOnce(ctx context.Context) error {
	var cur cursor
	if err := t.st.View(func(tx store.Tx) (err error) { cur, err = getCursor(tx); return err }); err != nil {
		return err
	}
	t.skipped, t.skippedMark = cur.After, cur.Mark
	from := cur.After
	check := cur.Mark != "" && from > 0 && !t.uncheckedOnce
	t.uncheckedOnce, t.checked = false, check
	if check {
		from--
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := t.cfg.Source.Subscribe(ctx, from)
	if err != nil {
		return fmt.Errorf("subscribe after %d: %w", from, err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMessage().(type) {
		case *treatyv1.SubscribeResponse_Heartbeat:
			if err := t.heartbeat(m.Heartbeat); err != nil {
				return err
			}
		case *treatyv1.SubscribeResponse_Event:
			if check {
				check = false
				if m.Event.GetSequence() == cur.After {
					if mark(m.Event) != cur.Mark {
						return t.restart("the revoker's event at this transmitter's position differs: the log was restored from an older copy", cur)
					}
					continue
				}
			}
			if err := t.handle(m.Event); err != nil {
				return err
			}
		}
	}
}

// restart moves the cursor to the start of the feed in a new generation: the log was replaced,
// so every event in it is new to receivers (delivery is at least once), and the new jtis keep
// receivers from dropping them as duplicates of the old log's.
func (t *Transmitter) restart(why string, cur cursor) error {
	t.log.Warn("ssf: "+why+"; replaying it from its start", "epoch", cur.Epoch, "old_position", cur.After)
	next := cursor{Epoch: cur.Epoch, Gen: cur.Gen + 1}
	if err := t.st.Update(func(tx store.Tx) error { return putCursor(tx, next) }); err != nil {
		return fmt.Errorf("restart the feed cursor: %w", err)
	}
	t.skipped, t.skippedMark = 0, ""
	return errResync
}

// mark fingerprints a feed event, to recognise it in a log that may have been replaced.
func mark(ev *treatyv1.Event) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d.%d/%s/%T", ev.GetSequence(), ev.GetTime().GetSeconds(), ev.GetTime().GetNanos(), ev.GetRequestId(), ev.GetChange()))
	return hex.EncodeToString(h[:12])
}

// heartbeat checks that the feed is the one the cursor points into. A new epoch, or a head below
// the cursor, means the revoker's log was replaced: the cursor moves to the start of the log in a
// new generation (see restart).
func (t *Transmitter) heartbeat(hb *treatyv1.Heartbeat) error {
	var cur cursor
	if err := t.st.View(func(tx store.Tx) (err error) { cur, err = getCursor(tx); return err }); err != nil {
		return fmt.Errorf("feed heartbeat: %w", err)
	}
	at := max(cur.After, t.skipped)
	moved := false
	switch {
	case cur.Epoch == "":
		var streams []*stored
		if err := t.st.View(func(tx store.Tx) (err error) { streams, err = allStreams(tx); return err }); err != nil {
			return fmt.Errorf("feed heartbeat: %w", err)
		}
		cur.Epoch, cur.After, cur.Mark = hb.GetEpoch(), at, t.skippedMark
		// A transmitter without streams owes nobody the history: start at the head.
		if len(streams) == 0 && hb.GetHeadSequence() > at {
			cur.After, cur.Mark, moved = hb.GetHeadSequence(), "", true
		}
	case hb.GetEpoch() != cur.Epoch:
		t.log.Warn("ssf: the revoker's feed has a new epoch; the log was replaced, following the new one from its start",
			"old_epoch", cur.Epoch, "new_epoch", hb.GetEpoch(), "old_position", at)
		cur, moved = cursor{Epoch: hb.GetEpoch(), Gen: cur.Gen + 1}, true
	case hb.GetHeadSequence() < at:
		cur.After = at
		return t.restart(fmt.Sprintf("the revoker's head %d is below this transmitter's position: the log was restored from an older copy", hb.GetHeadSequence()), cur)
	case at > cur.After:
		cur.After, cur.Mark = at, t.skippedMark // persist the events skipped since the last write
	default:
		return nil
	}
	if err := t.st.Update(func(tx store.Tx) error { return putCursor(tx, cur) }); err != nil {
		return fmt.Errorf("feed heartbeat: %w", err)
	}
	t.skipped, t.skippedMark = cur.After, cur.Mark
	if moved {
		return errResync
	}
	return nil
}

// skipCompacted moves the cursor to the revoker's snapshot when the events after it were
// compacted away: they cannot be replayed, so they are logged as lost for this transmitter.
func (t *Transmitter) skipCompacted(ctx context.Context) error {
	snap, err := t.cfg.Source.Snapshot(ctx)
	if err != nil {
		return err
	}
	return t.st.Update(func(tx store.Tx) error {
		cur, err := getCursor(tx)
		if err != nil {
			return err
		}
		if snap.Sequence() <= cur.After {
			return fmt.Errorf("the feed refused sequence %d as compacted, but its snapshot is at %d", cur.After, snap.Sequence())
		}
		t.log.Error("ssf: feed events were compacted before this transmitter saw them; their SETs were never sent",
			"from", cur.After+1, "to", snap.Sequence())
		if snap.Epoch() != cur.Epoch && cur.Epoch != "" {
			cur.Gen++
		}
		cur.Epoch, cur.After, cur.Mark = snap.Epoch(), snap.Sequence(), ""
		t.skipped, t.skippedMark = cur.After, ""
		return putCursor(tx, cur)
	})
}
