package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// feedCursor is the notifier's position in the revoker's feed.
type feedCursor struct {
	Epoch string `json:"epoch"`
	After uint64 `json:"after"`
}

// errResync ends a subscription so the next one starts from a moved position.
var errResync = errors.New("notify: feed position moved; resubscribing")

// maxCoalesced bounds how many credential revocations one notification sums up.
const maxCoalesced = 10000

// followFeed follows the revoker's feed for kill-switch events until ctx ends, resubscribing
// with backoff after failures.
func (n *Notifier) followFeed(ctx context.Context) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := n.followFeedOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errResync):
			backoff = minBackoff
			continue
		case fail.KindOf(err) == fail.OutOfRange:
			err = n.skipTo(ctx, "the events after this notifier's position were compacted away before it read them")
			if err == nil {
				continue
			}
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff // it ran well for a while; this is a fresh failure
		}
		n.log.Warn("notify: feed subscription ended; resubscribing", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// FeedPosition returns the notifier's position in the feed (zero before it first subscribed).
func (n *Notifier) FeedPosition() (epoch string, after uint64, err error) {
	cur, err := n.feedCursor()
	return cur.Epoch, cur.After, err
}

func (n *Notifier) feedCursor() (cur feedCursor, err error) {
	err = n.st.View(func(tx store.Tx) error {
		_, err := getJSON(tx, bucketMeta, keyFeedCursor, &cur)
		return err
	})
	return cur, err
}

// skipTo moves the position to the revoker's head: used the first time (history is not news),
// when the log was replaced, and when the events after the position are gone.
func (n *Notifier) skipTo(ctx context.Context, why string) error {
	snap, err := n.cfg.Feed.Snapshot(ctx)
	if err != nil {
		return err
	}
	old, err := n.feedCursor()
	if err != nil {
		return err
	}
	if why != "" {
		n.log.Warn("notify: "+why+"; following the feed from its head", "old_epoch", old.Epoch, "old_position", old.After,
			"epoch", snap.Epoch(), "head", snap.Sequence())
	}
	cur := feedCursor{Epoch: snap.Epoch(), After: snap.Sequence()}
	return n.st.Update(func(tx store.Tx) error { return putJSON(tx, bucketMeta, keyFeedCursor, cur) })
}

// followFeedOnce runs one subscription from the stored position.
func (n *Notifier) followFeedOnce(ctx context.Context) error {
	cur, err := n.feedCursor()
	if err != nil {
		return err
	}
	if cur.Epoch == "" {
		if err := n.skipTo(ctx, ""); err != nil {
			return err
		}
		return errResync
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := n.cfg.Feed.Subscribe(ctx, cur.After)
	if err != nil {
		return fmt.Errorf("subscribe after %d: %w", cur.After, err)
	}
	f := &follower{n: n, saved: cur, at: cur.After, revoked: map[string]*revocations{}}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMessage().(type) {
		case *treatyv1.SubscribeResponse_Heartbeat:
			hb := m.Heartbeat
			switch {
			case hb.GetEpoch() != cur.Epoch:
				return n.replaced(ctx, "the revoker's feed has a new epoch: its log was replaced")
			case hb.GetHeadSequence() < f.at:
				return n.replaced(ctx, "the revoker's head is below this notifier's position: its log was restored from an older copy")
			}
			if err := f.flush(ctx, nil); err != nil {
				return err
			}
		case *treatyv1.SubscribeResponse_Event:
			if err := f.event(ctx, m.Event); err != nil {
				return err
			}
		}
	}
}

func (n *Notifier) replaced(ctx context.Context, why string) error {
	if err := n.skipTo(ctx, why); err != nil {
		return err
	}
	return errResync
}

// revocations sums up one partner's credential revocations between two flushes.
type revocations struct {
	count       int
	first, last uint64
	jtis        []string // a sample
	reasons     []string
}

// follower turns feed events into notifications. Credential revocations are coalesced per
// partner until the next heartbeat (an offboarding may revoke thousands); any other kill-switch
// event is queued at once, with the coalesced ones and the new position, in one transaction.
type follower struct {
	n       *Notifier
	saved   feedCursor // the position as stored
	at      uint64     // the last event handled
	revoked map[string]*revocations
	count   int
}

func (f *follower) event(ctx context.Context, ev *treatyv1.Event) error {
	seq := ev.GetSequence()
	if seq <= f.at {
		return nil
	}
	var now *Event
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		if p := c.CredentialRevoked.GetPartnerId(); p != "" {
			r := f.revoked[p]
			if r == nil {
				r = &revocations{first: seq}
				f.revoked[p] = r
			}
			r.count++
			r.last = seq
			if len(r.jtis) < 10 {
				r.jtis = append(r.jtis, c.CredentialRevoked.GetJti())
			}
			if why := ev.GetReason(); len(r.reasons) < 5 && why != "" && !slices.Contains(r.reasons, why) {
				r.reasons = append(r.reasons, why)
			}
			f.count++
		}
	case *treatyv1.Event_Blocked:
		e, err := f.n.blockEvent(ctx, ev, TypeBlocked, c.Blocked.GetTargetKind(), c.Blocked.GetTargetId())
		if err != nil {
			return err
		}
		if c.Blocked.GetPermanent() {
			e.Details["permanent"] = "true"
		}
		now = &e
	case *treatyv1.Event_Restored:
		e, err := f.n.blockEvent(ctx, ev, TypeRestored, c.Restored.GetTargetKind(), c.Restored.GetTargetId())
		if err != nil {
			return err
		}
		now = &e
	case *treatyv1.Event_SigningKeyRevoked:
		kid := c.SigningKeyRevoked.GetKid()
		e := Event{Type: TypeKeyRevoked,
			Summary: fmt.Sprintf("Kill switch: issuer signing key %s was revoked; every credential it signed is denied, for every partner.", kid),
			Details: feedDetails(ev)}
		e.Details["kid"] = kid
		now = &e
	case *treatyv1.Event_GlobalWatermark:
		below := c.GlobalWatermark.GetBelowSequence()
		e := Event{Type: TypeRevokeAll,
			Summary: fmt.Sprintf("Break-glass: every credential issued below feed sequence %d was revoked, for every partner.", below),
			Details: feedDetails(ev)}
		e.Details["below_sequence"] = fmt.Sprint(below)
		now = &e
	}
	f.at = seq
	if now != nil || f.count >= maxCoalesced {
		return f.flush(ctx, now)
	}
	return nil
}

// flush queues the coalesced revocations and extra (if any), and stores the position, in one
// transaction.
func (f *follower) flush(ctx context.Context, extra *Event) error {
	if f.at == f.saved.After && f.count == 0 && extra == nil {
		return nil
	}
	var bodies []Notification
	partners := make([]string, 0, len(f.revoked))
	for p := range f.revoked {
		partners = append(partners, p)
	}
	slices.Sort(partners)
	for _, p := range partners {
		b, err := f.n.build(ctx, revokedEvent(p, f.revoked[p]))
		if err != nil {
			return err
		}
		bodies = append(bodies, b)
	}
	if extra != nil {
		b, err := f.n.build(ctx, *extra)
		if err != nil {
			return err
		}
		bodies = append(bodies, b)
	}
	cur := feedCursor{Epoch: f.saved.Epoch, After: f.at}
	err := f.n.st.Update(func(tx store.Tx) error {
		var stored feedCursor
		if _, err := getJSON(tx, bucketMeta, keyFeedCursor, &stored); err != nil {
			return err
		}
		if stored != f.saved {
			return errResync // moved by someone else (a skip): start over from there
		}
		for _, b := range bodies {
			if _, _, err := f.n.enqueueTx(tx, b, "", 0); err != nil {
				return err
			}
		}
		return putJSON(tx, bucketMeta, keyFeedCursor, cur)
	})
	if err != nil {
		return err
	}
	f.saved, f.revoked, f.count = cur, map[string]*revocations{}, 0
	if len(bodies) > 0 {
		f.n.wake()
	}
	return nil
}

func revokedEvent(partnerID string, r *revocations) Event {
	summary := fmt.Sprintf("%d credential(s) of partner %s were revoked.", r.count, partnerID)
	if r.count == 1 {
		summary = fmt.Sprintf("A credential of partner %s was revoked.", partnerID)
	}
	d := map[string]string{
		"count":          fmt.Sprint(r.count),
		"first_sequence": fmt.Sprint(r.first),
		"last_sequence":  fmt.Sprint(r.last),
		"jtis":           strings.Join(r.jtis, " "),
	}
	if len(r.reasons) > 0 {
		d["reasons"] = strings.Join(r.reasons, "; ")
	}
	return Event{Type: TypeCredentialsRevoked, PartnerID: partnerID, Summary: summary, Details: d}
}

// blockEvent describes a block or restore, finding the partner of an integration or workload in
// the registry.
func (n *Notifier) blockEvent(ctx context.Context, ev *treatyv1.Event, typ string, kind treatyv1.TargetKind, id string) (Event, error) {
	partnerID := ""
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		partnerID = id
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		i, err := n.cfg.Directory.GetIntegration(ctx, id)
		if err != nil && fail.KindOf(err) != fail.NotFound {
			return Event{}, fmt.Errorf("notify: find the partner of integration %q: %w", id, err)
		}
		partnerID = i.PartnerID
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		w, err := n.cfg.Directory.GetWorkload(ctx, id)
		if err != nil && fail.KindOf(err) != fail.NotFound {
			return Event{}, fmt.Errorf("notify: find the partner of workload %q: %w", id, err)
		}
		partnerID = w.PartnerID
	}
	what := "blocked: every credential under it is denied"
	if typ == TypeRestored {
		what = "restored: credentials issued before the restore stay invalid"
	}
	summary := fmt.Sprintf("Kill switch: %s %s was %s.", feed.KindName(kind), id, what)
	if partnerID != "" && kind != treatyv1.TargetKind_TARGET_KIND_PARTNER {
		summary = fmt.Sprintf("Kill switch: %s %s of partner %s was %s.", feed.KindName(kind), id, partnerID, what)
	}
	if r := ev.GetReason(); r != "" {
		summary += " Reason: " + r
	}
	d := feedDetails(ev)
	d["target_kind"], d["target_id"] = feed.KindName(kind), id
	return Event{Type: typ, PartnerID: partnerID, Summary: summary, Details: d}, nil
}

// feedDetails are the facts every feed-borne notification carries.
func feedDetails(ev *treatyv1.Event) map[string]string {
	d := map[string]string{
		"sequence": fmt.Sprint(ev.GetSequence()),
		"time":     ev.GetTime().AsTime().UTC().Format(time.RFC3339Nano),
	}
	if ev.GetActor() != "" {
		d["actor"] = ev.GetActor()
	}
	if ev.GetReason() != "" {
		d["reason"] = ev.GetReason()
	}
	return d
}
