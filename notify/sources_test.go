package notify_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
)

const day = 24 * time.Hour

// TestContractWarningOnce: a partner whose contract ends inside the window is warned once per
// contract end, however often the check runs; partners outside the window, or whose contract
// already ended, are not.
func TestContractWarningOnce(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "soon", now.Add(10*day))
	e.partner(t, "later", now.Add(60*day))
	e.partner(t, "edge", now.Add(30*day))
	cfg := e.config(nil, rcv.URL)
	cfg.ContractWarning = 30 * day
	n := e.open(t, cfg)

	for range 3 {
		if _, err := n.CheckContracts(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run(t, n) // its own first check finds nothing new either
	got := rcv.waitRequests(t, 2)
	time.Sleep(200 * time.Millisecond)
	if got = rcv.requests(); len(got) != 2 {
		t.Fatalf("%d notifications, want 2 (soon and edge)", len(got))
	}
	var partners []string
	for _, r := range got {
		b := decode(t, r.body)
		if b.Type != notify.TypeContractExpiring || b.Recipients == nil || b.Recipients.SecurityContact == "" {
			t.Errorf("notification %+v", b)
		}
		partners = append(partners, b.Partner.ID)
		if b.Partner.ID == "soon" && (b.Details["days_left"] != "10" || b.Details["contract_end"] != now.Add(10*day).Format(time.RFC3339)) {
			t.Errorf("details = %v", b.Details)
		}
	}
	slices.Sort(partners)
	if diff := cmp.Diff([]string{"edge", "soon"}, partners); diff != "" {
		t.Errorf("partners warned (-want +got):\n%s", diff)
	}

	// Twenty days on, "later" enters the window; "soon" and "edge" are not warned again.
	e.setClock(now.Add(31 * day))
	raised, err := n.CheckContracts(context.Background())
	if err != nil || raised != 1 {
		t.Fatalf("CheckContracts = %d, %v; want 1 (later)", raised, err)
	}
}

// creds is the inventory the revoker asks for a revoked credential's partner.
type creds map[string]string

func (c creds) Credential(_ context.Context, jti string) (time.Time, string, bool, error) {
	p, ok := c[jti]
	return now.Add(time.Hour), p, ok, nil
}

// TestKillSwitch follows a real revoker's feed: blocks of a partner and of an integration (found
// in the registry), a restore, revoke-all, and credential revocations coalesced per partner.
func TestKillSwitch(t *testing.T) {
	e := newEnv(t, revoker.Config{Credentials: creds{"jti-1": "acme", "jti-2": "acme", "jti-3": "acme"}})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*day))
	e.integration(t, "acme-crm", "acme")
	pdptest.Publish(t, e.rev, pdptest.NewKey(t, "key-1").Published(t))
	cfg := e.config(nil, rcv.URL)
	cfg.Feed = pdptest.NewSource(e.rev, 200*time.Millisecond)
	n := e.open(t, cfg)
	run(t, n)
	// Wait until it follows: what happened before is not news.
	deadline := time.Now().Add(10 * time.Second)
	for {
		epoch, _, err := n.FeedPosition()
		if err != nil {
			t.Fatal(err)
		}
		if epoch != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier did not start following the feed")
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx := context.Background()
	kill := func(kind treatyv1.TargetKind, id string, restore bool) {
		t.Helper()
		r := revoker.Request{Kind: kind, Target: id, Reason: "incident 42", Actor: "bob"}
		var err error
		if restore {
			_, err = e.rev.Restore(ctx, r)
		} else {
			_, err = e.rev.Revoke(ctx, r)
		}
		if err != nil {
			t.Fatalf("revoke %s %s: %v", kind, id, err)
		}
	}
	kill(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, "acme-crm", false)
	kill(treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme", false)
	kill(treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme", true)
	for _, jti := range []string{"jti-1", "jti-2", "jti-3", "jti-unknown"} {
		kill(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, jti, false)
	}
	kill(treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, "key-1", false)
	if _, err := e.rev.RevokeAll(ctx, revoker.RevokeAllRequest{Reason: "issuer compromise", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}

	rcv.waitRequests(t, 6)
	time.Sleep(200 * time.Millisecond) // nothing more comes
	var types, jtis []string
	revoked := 0
	for _, r := range rcv.requests() {
		b := decode(t, r.body)
		types = append(types, b.Type)
		switch b.Type {
		case notify.TypeRevokeAll:
			if b.Partner != nil || b.Details["reason"] != "issuer compromise" {
				t.Errorf("revoke all: %+v", b)
			}
			continue
		case notify.TypeKeyRevoked:
			if b.Partner != nil || b.Details["kid"] != "key-1" {
				t.Errorf("signing key revoked: %+v", b)
			}
			continue
		case notify.TypeCredentialsRevoked:
			// Coalesced until the next heartbeat or other event (usually one notification for the
			// three); the unknown jti names no partner, so nobody is told.
			k, _ := strconv.Atoi(b.Details["count"])
			revoked += k
			jtis = append(jtis, strings.Fields(b.Details["jtis"])...)
			if len(types) > 1 && types[len(types)-2] == notify.TypeCredentialsRevoked {
				types = types[:len(types)-1]
			}
		case notify.TypeBlocked:
			if b.Details["reason"] != "incident 42" || b.Details["actor"] != "bob" || b.Details["sequence"] == "" {
				t.Errorf("blocked details = %v", b.Details)
			}
		}
		if b.Partner == nil || b.Partner.ID != "acme" || b.Recipients == nil || b.Recipients.OwnerTeam != "team-acme" {
			t.Errorf("%s names partner %+v, recipients %+v", b.Type, b.Partner, b.Recipients)
		}
	}
	want := []string{notify.TypeBlocked, notify.TypeBlocked, notify.TypeRestored, notify.TypeCredentialsRevoked, notify.TypeKeyRevoked, notify.TypeRevokeAll}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("notification types (-want +got):\n%s", diff)
	}
	if revoked != 3 || strings.Join(jtis, " ") != "jti-1 jti-2 jti-3" {
		t.Errorf("credential revocations notified: %d, %v; want jti-1 jti-2 jti-3", revoked, jtis)
	}
	first := decode(t, rcv.requests()[0].body)
	if !strings.Contains(first.Summary, "integration acme-crm of partner acme") || first.Details["target_kind"] != "integration" {
		t.Errorf("integration block: %q %v", first.Summary, first.Details)
	}

	// The position is durable: a notifier reopened over the same store raises nothing again.
	_, at, err := n.FeedPosition()
	if err != nil || at != e.rev.Head() {
		t.Errorf("feed position %d, %v; want the head %d", at, err, e.rev.Head())
	}
}

// TestOffboardingFromAudit: offboarding steps in the registry's audit trail are notified once,
// with the partner's people; other actions are not.
func TestOffboardingFromAudit(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "old", now.Add(10*day)) // before the notifier: not news
	ctx := context.Background()
	if _, _, err := e.reg.OffboardPartner(ctx, "old", "history", "alice"); err != nil {
		t.Fatal(err)
	}
	n := e.open(t, e.config(nil, rcv.URL))
	e.partner(t, "acme", now.Add(365*day))
	e.partner(t, "ending", now.Add(day))
	if _, _, err := e.reg.SuspendPartner(ctx, "acme", "paused", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.OffboardPartner(ctx, "acme", "contract not renewed", "alice"); err != nil {
		t.Fatal(err)
	}
	e.setClock(now.Add(2 * day))
	if ended, _, err := e.reg.EndContracts(ctx); err != nil || ended != 1 {
		t.Fatalf("EndContracts = %d, %v", ended, err)
	}
	raised, err := n.PollAudit(ctx)
	if err != nil || raised != 2 {
		t.Fatalf("PollAudit = %d, %v; want 2", raised, err)
	}
	if raised, err := n.PollAudit(ctx); err != nil || raised != 0 {
		t.Fatalf("second PollAudit = %d, %v; want 0", raised, err)
	}
	run(t, n)
	got := rcv.waitRequests(t, 2)
	a, b := decode(t, got[0].body), decode(t, got[1].body)
	if a.Type != notify.TypeOffboardingTerminated || a.Partner.ID != "acme" || a.Recipients.AccountableOwner != "owner@acme.example" ||
		a.Details["action"] != "partner.offboard" || a.Details["reason"] != "contract not renewed" || a.Details["state"] != "terminated" {
		t.Errorf("offboard notification = %+v", a)
	}
	if b.Type != notify.TypeContractEnded || b.Partner.ID != "ending" || b.Details["state"] != "offboarding" {
		t.Errorf("contract end notification = %+v", b)
	}
	time.Sleep(100 * time.Millisecond) // several polls pass: nothing more
	if len(rcv.requests()) != 2 {
		t.Errorf("%d notifications, want 2", len(rcv.requests()))
	}
}

func TestOffboardingTypes(t *testing.T) {
	for action, want := range map[string]string{
		"partner.offboard.start":     notify.TypeOffboardingStarted,
		"partner.offboard.revoked":   notify.TypeOffboardingRevoked,
		"partner.offboard.confirmed": notify.TypeOffboardingConfirmed,
		"partner.terminate":          notify.TypeOffboardingTerminated,
		"partner.offboard":           notify.TypeOffboardingTerminated,
		"partner.contract_end":       notify.TypeContractEnded,
		"partner.offboard.retired":   "offboarding.retired",
		"partner.suspend":            "",
		"integration.retire":         "",
		"partner.offboarded":         "",
	} {
		if got := notify.OffboardingType(action); got != want {
			t.Errorf("OffboardingType(%q) = %q, want %q", action, got, want)
		}
	}
}

// TestFindingOnce: a finding is notified once per id.
func TestFindingOnce(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*day))
	n := e.open(t, e.config(nil, rcv.URL))
	f := notify.Finding{ID: "f-1", PartnerID: "acme", Severity: "CRITICAL", Rule: "ex_partner_live_credentials",
		Risk: "NHI1", Subject: "partner acme", Summary: "3 credentials of a terminated partner are live",
		Evidence: map[string]string{"live_credentials": "3"}}
	for i := range 2 {
		added, err := n.NotifyFinding(context.Background(), f)
		if err != nil || added != (i == 0) {
			t.Fatalf("NotifyFinding #%d = %v, %v", i, added, err)
		}
	}
	if _, err := n.NotifyFinding(context.Background(), notify.Finding{Summary: "no id"}); err == nil {
		t.Error("a finding without an id was accepted")
	}
	n.NotifyFindings(context.Background(), []notify.Finding{f, {ID: "f-2", Summary: "x"}, {ID: "f-3"}})
	if !strings.Contains(e.logs.String(), "finding_id=f-3") {
		t.Errorf("a finding NotifyFindings could not queue is not logged:\n%s", e.logs.String())
	}
	run(t, n)
	rcv.waitRequests(t, 2)
	b := decode(t, rcv.requests()[0].body)
	want := map[string]string{"finding_id": "f-1", "severity": "critical", "rule": "ex_partner_live_credentials", "risk": "NHI1",
		"subject": "partner acme", "live_credentials": "3"}
	if diff := cmp.Diff(want, b.Details); diff != "" || b.Type != notify.TypeFinding || b.Recipients.SecurityContact != "security@acme.example" {
		t.Errorf("finding notification %+v (-want +got details):\n%s", b, diff)
	}
	time.Sleep(100 * time.Millisecond)
	if len(rcv.requests()) != 2 {
		t.Errorf("%d notifications, want 2 (f-1 once, f-2)", len(rcv.requests()))
	}
	// A day on, the same finding id is a recurrence: notified again.
	e.setClock(now.Add(notify.FindingRenotify + time.Second))
	if added, err := n.NotifyFinding(context.Background(), f); err != nil || !added {
		t.Errorf("NotifyFinding a day later = %v, %v; want a new notification", added, err)
	}
	rcv.waitRequests(t, 3)
}
