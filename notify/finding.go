package notify

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
)

// Finding is a posture finding to notify about. It is a plain struct so that the posture engine
// and the notifier do not depend on each other; the caller (the posture engine's OnNew hook)
// decides which findings are worth a notification, normally high and critical ones.
type Finding struct {
	// ID identifies the finding; a finding is notified once per id.
	ID string
	// PartnerID is the partner it concerns, if any.
	PartnerID string
	// Severity, for example "high" or "critical".
	Severity string
	// Rule names the rule that raised it, for example "ex_partner_live_credentials".
	Rule string
	// Risk is the OWASP NHI Top 10 item it maps to, for example "NHI1".
	Risk string
	// Subject names what it is about, for example "partner acme integration acme-crm".
	Subject string
	// Summary says what is wrong and what to do, for a person. Required.
	Summary string
	// Evidence holds the facts it rests on (counts, dates, ids); never secrets.
	Evidence map[string]string
}

// FindingRenotify is how long a finding id is not notified again: a finding the posture engine
// reports again soon (after a restart) is a duplicate, one that comes back later a recurrence.
const FindingRenotify = 24 * time.Hour

// NotifyFinding raises a finding.new notification, once per finding id within FindingRenotify.
// It returns whether a notification was added (false for a duplicate). The details are the
// evidence, with the finding's id, severity, rule, risk and subject.
func (n *Notifier) NotifyFinding(ctx context.Context, f Finding) (bool, error) {
	if f.ID == "" {
		return false, fail.Invalidf("id", "a finding needs an id")
	}
	if f.Summary == "" {
		return false, fail.Invalidf("summary", "a finding needs a summary")
	}
	d := maps.Clone(f.Evidence)
	if d == nil {
		d = map[string]string{}
	}
	d["finding_id"] = f.ID
	for k, v := range map[string]string{"severity": strings.ToLower(f.Severity), "rule": f.Rule, "risk": f.Risk, "subject": f.Subject} {
		if v != "" {
			d[k] = v
		}
	}
	summary := f.Summary
	if f.Severity != "" {
		summary = fmt.Sprintf("New %s finding: %s", strings.ToLower(f.Severity), f.Summary)
	}
	_, added, err := n.Enqueue(ctx, Event{
		Type: TypeFinding, PartnerID: f.PartnerID, Summary: summary, Details: d, DedupeKey: "finding/" + f.ID, DedupeFor: FindingRenotify,
	})
	return added, err
}

// NotifyFindings calls NotifyFinding for each finding, logging rather than returning failures,
// for a hook with no error to return (the posture engine's OnNew).
func (n *Notifier) NotifyFindings(ctx context.Context, fs []Finding) {
	for _, f := range fs {
		if _, err := n.NotifyFinding(ctx, f); err != nil {
			n.log.Error("notify: could not queue a finding's notification", "finding_id", f.ID, "err", err)
		}
	}
}
