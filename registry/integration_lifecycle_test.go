package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

const (
	integrationRequested = treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED
	integrationApproved  = treatyv1.IntegrationState_INTEGRATION_STATE_APPROVED
	integrationActive    = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
	integrationSuspended = treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED
)

// integrationIn creates integration id under partner (which must be active) and walks it to state.
func (e *env) integrationIn(t *testing.T, id, partnerID string, state treatyv1.IntegrationState) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := e.reg.CreateIntegration(ctx, integration(id, partnerID), "alice"); err != nil {
		t.Fatal(err)
	}
	approve := func() error { _, _, err := e.reg.ApproveIntegration(ctx, id, "ciso", "SEC-1", "alice"); return err }
	activate := func() error { _, _, err := e.reg.ActivateIntegration(ctx, id, "alice"); return err }
	steps := map[treatyv1.IntegrationState][]func() error{
		integrationApproved: {approve},
		integrationActive:   {approve, activate},
		integrationSuspended: {approve, activate, func() error {
			_, _, err := e.reg.SuspendIntegration(ctx, id, "incident", "alice")
			return err
		}},
		integrationRetired: {approve, activate, func() error {
			_, _, err := e.reg.RetireIntegration(ctx, id, "done", "alice")
			return err
		}},
	}
	for _, step := range steps[state] {
		if err := step(); err != nil {
			t.Fatalf("walk integration %s to %s: %v", id, state, err)
		}
	}
}

// Every integration transition from every state.
func TestIntegrationTransitions(t *testing.T) {
	states := []treatyv1.IntegrationState{integrationRequested, integrationApproved, integrationActive, integrationSuspended, integrationRetired}
	ctx := context.Background()
	type step struct {
		name     string
		do       func(e *env, id string) (registry.Integration, error)
		to       treatyv1.IntegrationState // unspecified: unchanged
		refusals map[treatyv1.IntegrationState]string
	}
	steps := []step{
		{name: "approve", to: integrationApproved,
			do: func(e *env, id string) (registry.Integration, error) {
				i, _, err := e.reg.ApproveIntegration(ctx, id, "", "", "dana")
				return i, err
			},
			refusals: map[treatyv1.IntegrationState]string{
				integrationApproved: "already approved", integrationActive: "only a requested integration can be approved",
				integrationSuspended: "only a requested integration can be approved", integrationRetired: "retirement is final",
			}},
		{name: "activate", to: integrationActive,
			do: func(e *env, id string) (registry.Integration, error) {
				i, _, err := e.reg.ActivateIntegration(ctx, id, "dana")
				return i, err
			},
			refusals: map[treatyv1.IntegrationState]string{
				integrationRequested: "approve it first (treaty integration approve ", integrationActive: "already active",
				integrationSuspended: "treaty integration reactivate", integrationRetired: "retirement is final",
			}},
		{name: "suspend", to: integrationSuspended,
			do: func(e *env, id string) (registry.Integration, error) {
				i, _, err := e.reg.SuspendIntegration(ctx, id, "incident", "dana")
				return i, err
			},
			refusals: map[treatyv1.IntegrationState]string{
				integrationRequested: "approve it first", integrationApproved: "activate it",
				integrationSuspended: "already suspended", integrationRetired: "retirement is final",
			}},
		{name: "reactivate", to: integrationActive,
			do: func(e *env, id string) (registry.Integration, error) {
				i, _, err := e.reg.ReactivateIntegration(ctx, id, "resolved", "dana")
				return i, err
			},
			refusals: map[treatyv1.IntegrationState]string{
				integrationRequested: "approve it first", integrationApproved: "activate it",
				integrationActive: "nothing to reactivate", integrationRetired: "retirement is final",
			}},
		{name: "recertify",
			do: func(e *env, id string) (registry.Integration, error) {
				return e.reg.RecertifyIntegration(ctx, id, "", "dana")
			},
			refusals: map[treatyv1.IntegrationState]string{integrationRetired: "retirement is final"}},
	}
	e := newEnv(t)
	e.mustPartner(t, "acme")
	for _, s := range steps {
		for _, from := range states {
			name := strings.ToLower(strings.TrimPrefix(from.String(), "INTEGRATION_STATE_"))
			id := s.name + "-" + name
			t.Run(s.name+" from "+name, func(t *testing.T) {
				e.integrationIn(t, id, "acme", from)
				got, err := s.do(e, id)
				if want, refused := s.refusals[from]; refused {
					checkErr(t, err, fail.Precondition, "")
					if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), id) {
						t.Errorf("refusal %q does not name %q and say %q", err, id, want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := s.to
				if want == treatyv1.IntegrationState_INTEGRATION_STATE_UNSPECIFIED {
					want = from
				}
				if got.State != want {
					t.Errorf("state %s, want %s", got.State, want)
				}
			})
		}
	}
}

// An integration may be requested while its partner is being approved, and approved, but only
// activated under an active partner; the refusal names the partner's missing step.
func TestIntegrationFollowsItsPartner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.partnerIn(t, "acme", partnerProposed)
	_, _, err := e.reg.CreateIntegration(ctx, integration("orders", "acme"), "alice", active)
	checkErr(t, err, fail.Precondition, "")
	if !strings.Contains(err.Error(), "treaty partner approve acme") {
		t.Errorf("refusal %q does not say to approve the partner", err)
	}
	e.integrationIn(t, "orders", "acme", integrationApproved)
	_, _, err = e.reg.ActivateIntegration(ctx, "orders", "alice")
	checkErr(t, err, fail.Precondition, "")
	if !strings.Contains(err.Error(), `partner "acme" is proposed`) {
		t.Errorf("refusal %q does not name the partner's state", err)
	}
	if _, _, err := e.reg.ApprovePartner(ctx, "acme", "ciso", "alice"); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.reg.ActivateIntegration(ctx, "orders", "alice")
	if err == nil || !strings.Contains(err.Error(), "treaty partner activate acme") {
		t.Errorf("activation under an approved partner: %v", err)
	}
	if _, _, err := e.reg.ActivatePartner(ctx, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	i, seq, err := e.reg.ActivateIntegration(ctx, "orders", "alice")
	if err != nil || i.State != integrationActive || i.ApprovedBy != "ciso" || i.ApprovalTicket != "SEC-1" {
		t.Fatalf("activation = %+v, %v", i, err)
	}
	if fi, _ := e.rev.State().Integration("orders"); fi.State != integrationActive || e.rev.Head() < seq {
		t.Errorf("feed integration %+v", fi)
	}

	// Nothing new under a terminated partner.
	e.partnerIn(t, "gone", partnerTerminated)
	_, _, err = e.reg.CreateIntegration(ctx, integration("late", "gone"), "alice")
	checkErr(t, err, fail.Precondition, "")
}

// Suspending an integration blocks it in the feed; reactivating restores it (the restore's
// sequence is the watermark).
func TestSuspendAndReactivateIntegration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.integrationIn(t, "orders", "acme", integrationActive)
	_, seq, err := e.reg.SuspendIntegration(ctx, "orders", "leaked key", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if b := e.event(t, seq).GetBlocked(); b.GetTargetId() != "orders" || b.GetPermanent() {
		t.Errorf("suspension's event %v", e.event(t, seq))
	}
	if fi, _ := e.rev.State().Integration("orders"); fi.Block == nil || fi.State != integrationSuspended {
		t.Errorf("feed integration after suspension %+v", fi)
	}
	i, seq, err := e.reg.ReactivateIntegration(ctx, "orders", "rotated", "bob")
	if err != nil || i.State != integrationActive {
		t.Fatalf("reactivate = %+v, %v", i, err)
	}
	if fi, _ := e.rev.State().Integration("orders"); fi.Block != nil || fi.Watermark != seq || fi.State != integrationActive {
		t.Errorf("feed integration after reactivation %+v, want watermark %d", fi, seq)
	}
	_, _, err = e.reg.SuspendIntegration(ctx, "orders", "", "bob")
	checkErr(t, err, fail.Invalid, "reason")
}

// Recertification stamps the time and is audited; it publishes nothing.
func TestRecertifyIntegration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.integrationIn(t, "orders", "acme", integrationActive)
	head := e.rev.Head()
	i, err := e.reg.RecertifyIntegration(ctx, "orders", "quarterly review", "auditor")
	if err != nil || !i.LastRecertified.Equal(now) {
		t.Fatalf("recertify = %+v, %v", i, err)
	}
	if e.rev.Head() != head {
		t.Error("recertification published into the feed")
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	last := recs[len(recs)-1]
	if last.Action != "integration.recertify" || last.Actor != "auditor" || last.Reason != "quarterly review" || last.After["last_recertified"] == "" {
		t.Errorf("audit record %+v", last)
	}
}

// Create with the shortcut: approved and active, one audit record.
func TestCreateIntegrationOneStep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	before, _ := e.reg.ListAudit(ctx, 0, 0)
	i, _, err := e.reg.CreateIntegration(ctx, integration("orders", "acme"), "alice", registry.CreateOptions{Activate: true, ApprovedBy: "ciso"})
	if err != nil || i.State != integrationActive || i.ApprovedBy != "ciso" || !i.Approved.Equal(now) {
		t.Fatalf("create = %+v, %v", i, err)
	}
	after, _ := e.reg.ListAudit(ctx, 0, 0)
	if len(after) != len(before)+1 {
		t.Errorf("the one-step create wrote %d audit records, want 1", len(after)-len(before))
	}
	plain, _, err := e.reg.CreateIntegration(ctx, integration("reports", "acme"), "alice")
	if err != nil || plain.State != integrationRequested || plain.ApprovedBy != "" {
		t.Errorf("plain create = %+v, %v; want requested", plain, err)
	}
	in := integration("noenv", "acme")
	in.Environment = ""
	_, _, err = e.reg.CreateIntegration(ctx, in, "alice")
	checkErr(t, err, fail.Invalid, "integration.environment")
	in.Environment = "Prod"
	_, _, err = e.reg.CreateIntegration(ctx, in, "alice")
	checkErr(t, err, fail.Invalid, "integration.environment")
}
