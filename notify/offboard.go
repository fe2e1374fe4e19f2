package notify

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

// offboardingTypes maps the audit actions of a partner's offboarding to notification types.
var offboardingTypes = map[string]string{
	"partner.offboard.start":     TypeOffboardingStarted,
	"partner.offboard.revoked":   TypeOffboardingRevoked,
	"partner.offboard.confirmed": TypeOffboardingConfirmed,
	"partner.terminate":          TypeOffboardingTerminated,
	// The foundation's one-step offboarding, which terminates at once.
	"partner.offboard":     TypeOffboardingTerminated,
	"partner.contract_end": TypeContractEnded,
}

// offboardingType returns the notification type of an audit action, or "" if it is not a step
// of an offboarding. An unknown partner.offboard.* step still notifies, as offboarding.<step>.
func offboardingType(action string) string {
	if t, ok := offboardingTypes[action]; ok {
		return t
	}
	if step, ok := strings.CutPrefix(action, "partner.offboard."); ok && step != "" {
		return "offboarding." + step
	}
	return ""
}

const auditPage = 1000

// startAudit sets the audit position to the trail's end the first time the notifier runs over
// this store: offboardings that happened before are not news.
func (n *Notifier) startAudit(ctx context.Context) error {
	var set bool
	if err := n.st.View(func(tx store.Tx) error { set = tx.Get(bucketMeta, keyAuditCursor) != nil; return nil }); err != nil {
		return fmt.Errorf("notify: read the audit position: %w", err)
	}
	if set {
		return nil
	}
	var last uint64
	for {
		recs, err := n.cfg.Directory.ListAudit(ctx, last, auditPage)
		if err != nil {
			return fmt.Errorf("notify: find the end of the audit trail: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		last = recs[len(recs)-1].Sequence
	}
	return n.st.Update(func(tx store.Tx) error { return tx.Put(bucketMeta, keyAuditCursor, store.Uint64Key(last)) })
}

// auditLoop reads the audit trail every AuditPollInterval until ctx ends.
func (n *Notifier) auditLoop(ctx context.Context) {
	for {
		if _, err := n.PollAudit(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notify: reading the audit trail failed; will retry", "err", err)
		}
		if !sleep(ctx, n.cfg.AuditPollInterval) {
			return
		}
	}
}

// PollAudit reads the audit trail after the notifier's position and raises a notification for
// each offboarding step, moving the position in the same transaction. It returns how many it
// raised.
func (n *Notifier) PollAudit(ctx context.Context) (int, error) {
	raised := 0
	for {
		var after uint64
		if err := n.st.View(func(tx store.Tx) error {
			if v := tx.Get(bucketMeta, keyAuditCursor); v != nil {
				after = store.KeyUint64(v)
			}
			return nil
		}); err != nil {
			return raised, err
		}
		recs, err := n.cfg.Directory.ListAudit(ctx, after, auditPage)
		if err != nil {
			return raised, fmt.Errorf("notify: read the audit trail after %d: %w", after, err)
		}
		if len(recs) == 0 {
			return raised, nil
		}
		var bodies []Notification
		for _, rec := range recs {
			typ := offboardingType(rec.Action)
			if typ == "" {
				continue
			}
			body, err := n.build(ctx, offboardingEvent(typ, rec))
			if err != nil {
				return raised, err
			}
			bodies = append(bodies, body)
		}
		last := recs[len(recs)-1].Sequence
		err = n.st.Update(func(tx store.Tx) error {
			// Another PollAudit may have moved the position meanwhile: only the first one raises.
			if v := tx.Get(bucketMeta, keyAuditCursor); v != nil && store.KeyUint64(v) != after {
				bodies = nil
				return nil
			}
			for _, b := range bodies {
				if _, _, err := n.enqueueTx(tx, b, "", 0); err != nil {
					return err
				}
			}
			return tx.Put(bucketMeta, keyAuditCursor, store.Uint64Key(last))
		})
		if err != nil {
			return raised, fmt.Errorf("notify: queue offboarding notifications: %w", err)
		}
		if len(bodies) > 0 {
			raised += len(bodies)
			n.wake()
		}
		if len(recs) < auditPage {
			return raised, nil
		}
	}
}

// offboardingEvent describes one offboarding step. Its details are the audit record's summary
// of the partner after the step, plus who did it, why, and the record's place in the trail.
func offboardingEvent(typ string, rec registry.AuditRecord) Event {
	partnerID := strings.TrimPrefix(rec.Target, "partner/")
	details := maps.Clone(rec.After)
	if details == nil {
		details = map[string]string{}
	}
	details["action"] = rec.Action
	details["actor"] = rec.Actor
	details["audit_sequence"] = fmt.Sprint(rec.Sequence)
	details["audit_time"] = rec.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	if rec.Reason != "" {
		details["reason"] = rec.Reason
	}
	what := map[string]string{
		TypeOffboardingStarted:    "offboarding started",
		TypeOffboardingRevoked:    "its credentials were revoked",
		TypeOffboardingConfirmed:  "no live credential is left (confirmed)",
		TypeOffboardingTerminated: "it is terminated",
		TypeContractEnded:         "its contract ended; access is blocked for good and offboarding begins",
	}[typ]
	if what == "" {
		what = rec.Action
	}
	summary := fmt.Sprintf("Partner %s: %s.", partnerID, what)
	if rec.Reason != "" {
		summary = fmt.Sprintf("Partner %s: %s (%s).", partnerID, what, rec.Reason)
	}
	return Event{Type: typ, PartnerID: partnerID, Summary: summary, Details: details}
}
