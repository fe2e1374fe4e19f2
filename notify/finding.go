package notify

import (
	"context"
	"fmt"
	"strings"

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
	// Check names the check that raised it, for example "ex_partner_credentials_live".
	Check string
	// OWASP is the OWASP NHI Top 10 item it maps to, for example "NHI1".
	OWASP string
	// Subject names what it is about, for example "integration/acme-crm".
	Subject string
	// Summary is one readable sentence. Required.
	Summary string
}

// NotifyFinding raises a finding.new notification, once per finding id. It returns whether a
// notification was added (false for a finding notified before).
func (n *Notifier) NotifyFinding(ctx context.Context, f Finding) (bool, error) {
	if f.ID == "" {
		return false, fail.Invalidf("id", "a finding needs an id")
	}
	if f.Summary == "" {
		return false, fail.Invalidf("summary", "a finding needs a summary")
	}
	d := map[string]string{"finding_id": f.ID}
	for k, v := range map[string]string{"severity": strings.ToLower(f.Severity), "check": f.Check, "owasp": f.OWASP, "subject": f.Subject} {
		if v != "" {
			d[k] = v
		}
	}
	summary := f.Summary
	if f.Severity != "" {
		summary = fmt.Sprintf("New %s finding: %s", strings.ToLower(f.Severity), f.Summary)
	}
	_, added, err := n.Enqueue(ctx, Event{
		Type: TypeFinding, PartnerID: f.PartnerID, Summary: summary, Details: d, DedupeKey: "finding/" + f.ID,
	})
	return added, err
}
