package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// partnerIn creates partner id and walks it to state through the lifecycle's own calls.
func (e *env) partnerIn(t *testing.T, id string, state treatyv1.PartnerState) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := e.reg.CreatePartner(ctx, partner(id), "alice"); err != nil {
		t.Fatal(err)
	}
	steps := map[treatyv1.PartnerState][]func() error{
		partnerApproved: {func() error { _, _, err := e.reg.ApprovePartner(ctx, id, "cfo", "alice"); return err }},
		partnerActive: {
			func() error { _, _, err := e.reg.ApprovePartner(ctx, id, "cfo", "alice"); return err },
			func() error { _, _, err := e.reg.ActivatePartner(ctx, id, "alice"); return err },
		},
		partnerSuspended: {
			func() error { _, _, err := e.reg.ApprovePartner(ctx, id, "cfo", "alice"); return err },
			func() error { _, _, err := e.reg.ActivatePartner(ctx, id, "alice"); return err },
			func() error { _, _, err := e.reg.SuspendPartner(ctx, id, "incident", "alice"); return err },
		},
		partnerTerminated: {
			func() error { _, _, err := e.reg.ApprovePartner(ctx, id, "cfo", "alice"); return err },
			func() error { _, _, err := e.reg.ActivatePartner(ctx, id, "alice"); return err },
			func() error { _, _, err := e.reg.OffboardPartner(ctx, id, "gone", "alice"); return err },
		},
	}
	for _, step := range steps[state] {
		if err := step(); err != nil {
			t.Fatalf("walk partner %s to %s: %v", id, state, err)
		}
	}
}

// Every partner transition from every state: allowed where the lifecycle allows it, else
// FAILED_PRECONDITION with a message that says what is missing.
func TestPartnerTransitions(t *testing.T) {
	states := []treatyv1.PartnerState{partnerProposed, partnerApproved, partnerActive, partnerSuspended, partnerTerminated}
	type step struct {
		name string
		do   func(e *env, id string) (registry.Partner, error)
		to   treatyv1.PartnerState
		// refusals maps a state the step is refused in to a part of the message.
		refusals map[treatyv1.PartnerState]string
	}
	ctx := context.Background()
	steps := []step{
		{name: "approve", to: partnerApproved,
			do: func(e *env, id string) (registry.Partner, error) {
				p, _, err := e.reg.ApprovePartner(ctx, id, "", "dana")
				return p, err
			},
			refusals: map[treatyv1.PartnerState]string{
				partnerApproved: "is already approved", partnerActive: "only a proposed partner can be approved",
				partnerSuspended: "only a proposed partner can be approved", partnerTerminated: "ended for good",
			}},
		{name: "activate", to: partnerActive,
			do: func(e *env, id string) (registry.Partner, error) {
				p, _, err := e.reg.ActivatePartner(ctx, id, "dana")
				return p, err
			},
			refusals: map[treatyv1.PartnerState]string{
				partnerProposed: "is proposed; approve it first (treaty partner approve ", partnerActive: "is already active",
				partnerSuspended: "treaty partner reactivate", partnerTerminated: "ended for good",
			}},
		{name: "reactivate", to: partnerActive,
			do: func(e *env, id string) (registry.Partner, error) {
				p, _, err := e.reg.ReactivatePartner(ctx, id, "resolved", "dana")
				return p, err
			},
			refusals: map[treatyv1.PartnerState]string{
				partnerProposed: "approve it first", partnerApproved: "activate it (treaty partner activate ",
				partnerActive: "nothing to reactivate", partnerTerminated: "ended for good",
			}},
		{name: "suspend", to: partnerSuspended,
			do: func(e *env, id string) (registry.Partner, error) {
				p, _, err := e.reg.SuspendPartner(ctx, id, "incident", "dana")
				return p, err
			},
			refusals: map[treatyv1.PartnerState]string{
				partnerProposed: "only a partner that is active", partnerApproved: "only a partner that is active",
				partnerSuspended: "only a partner that is active", partnerTerminated: "only a partner that is active",
			}},
	}
	e := newEnv(t)
	n := 0
	for _, s := range steps {
		for _, from := range states {
			n++
			id := strings.ReplaceAll(s.name+"-"+registryStateName(from), "_", "-")
			t.Run(s.name+" from "+registryStateName(from), func(t *testing.T) {
				e.partnerIn(t, id, from)
				p, err := s.do(e, id)
				want, refused := s.refusals[from]
				if refused {
					checkErr(t, err, fail.Precondition, "")
					if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), id) {
						t.Errorf("refusal %q does not name %q and say %q", err, id, want)
					}
					got, _ := e.reg.GetPartner(ctx, id)
					if got.State != from {
						t.Errorf("a refused step moved the partner to %s", got.State)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s from %s: %v", s.name, from, err)
				}
				if p.State != s.to {
					t.Errorf("state %s, want %s", p.State, s.to)
				}
			})
		}
	}
	if n != 20 {
		t.Fatalf("covered %d transitions", n)
	}
}

func registryStateName(s treatyv1.PartnerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PARTNER_STATE_"))
}

// Approval records who approved and when; the approver defaults to the actor, and someone must be
// named.
func TestApprovePartnerRecordsTheApprover(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.partnerIn(t, "acme", partnerProposed)
	e.partnerIn(t, "globex", partnerProposed)
	e.partnerIn(t, "initech", partnerProposed)
	p, seq, err := e.reg.ApprovePartner(ctx, "acme", "ciso@example.com", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p.ApprovedBy != "ciso@example.com" || !p.Approved.Equal(now) || p.State != partnerApproved {
		t.Errorf("approved partner = %+v", p)
	}
	if ev := e.event(t, seq).GetPartnerChanged(); ev.GetState() != partnerApproved {
		t.Errorf("feed event %v", ev)
	}
	if p, _, err := e.reg.ApprovePartner(ctx, "globex", "", "bob"); err != nil || p.ApprovedBy != "bob" {
		t.Errorf("approval without approved_by = %+v, %v; want the actor as approver", p, err)
	}
	_, _, err = e.reg.ApprovePartner(ctx, "initech", "", "")
	checkErr(t, err, fail.Invalid, "approved_by")
	_, _, err = e.reg.ApprovePartner(ctx, "nobody", "x", "alice")
	checkErr(t, err, fail.NotFound, "")
	recs, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Action != "partner.approve" || last.Target != "partner/globex" || last.After["approved_by"] != "bob" || last.Before["state"] != "proposed" {
		t.Errorf("last audit record %+v", last)
	}
}

// Reactivating lifts the suspension's block through the feed, as a restore: credentials from
// before it stay dead (the restore's sequence is the partner's watermark).
func TestReactivatePartnerRestoresTheBlock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.partnerIn(t, "acme", partnerSuspended)
	if ctl, _ := e.rev.State().Control(treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme"); ctl.Block == nil {
		t.Fatal("suspension placed no block")
	}
	p, seq, err := e.reg.ReactivatePartner(ctx, "acme", "invoices paid", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if p.State != partnerActive {
		t.Errorf("state %s", p.State)
	}
	if r := e.event(t, seq).GetRestored(); r.GetTargetId() != "acme" || r.GetTargetKind() != treatyv1.TargetKind_TARGET_KIND_PARTNER {
		t.Errorf("event %d is not the partner's restore: %v", seq, e.event(t, seq))
	}
	fp, _ := e.rev.State().Partner("acme")
	if fp.Block != nil || fp.Watermark != seq || fp.State != partnerActive {
		t.Errorf("feed partner = %+v, want no block, watermark %d, active", fp, seq)
	}
	_, _, err = e.reg.ReactivatePartner(ctx, "acme", "", "bob")
	checkErr(t, err, fail.Invalid, "reason")
}

// The one-step shortcut: created, approved and activated in one transaction with one audit
// record; approved_by is required with it and refused without it.
func TestCreatePartnerOneStep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, _, err := e.reg.CreatePartner(ctx, partner("acme"), "alice", registry.CreateOptions{Activate: true, ApprovedBy: "ciso"})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != partnerActive || p.ApprovedBy != "ciso" || !p.Approved.Equal(now) {
		t.Errorf("partner = %+v", p)
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	if len(recs) != 1 || recs[0].Action != "partner.create" || recs[0].After["state"] != "active" || recs[0].After["approved_by"] != "ciso" {
		t.Errorf("audit trail %+v, want one partner.create record of an active partner approved by ciso", recs)
	}
	_, _, err = e.reg.CreatePartner(ctx, partner("globex"), "alice", registry.CreateOptions{Activate: true})
	checkErr(t, err, fail.Invalid, "approved_by")
	_, _, err = e.reg.CreatePartner(ctx, partner("globex"), "alice", registry.CreateOptions{ApprovedBy: "ciso"})
	checkErr(t, err, fail.Invalid, "approved_by")
	if _, err := e.reg.GetPartner(ctx, "globex"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("a refused create stored the partner: %v", err)
	}
}

// A partner whose contract has ended cannot be activated or reactivated.
func TestActivateAfterContractEnd(t *testing.T) {
	e := newRevoker(t)
	clock := now
	e.node = startNode(t, t.TempDir()+"/registry.db", e.pub, func(c *registry.Config) { c.Now = func() time.Time { return clock } })
	ctx := context.Background()
	p := partner("acme")
	p.ContractEnd = now.Add(time.Hour)
	if _, _, err := e.reg.CreatePartner(ctx, p, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.ApprovePartner(ctx, "acme", "ciso", "alice"); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(2 * time.Hour) // the scheduler is not running: the partner is still approved
	_, _, err := e.reg.ActivatePartner(ctx, "acme", "alice")
	checkErr(t, err, fail.Precondition, "")
	if !strings.Contains(err.Error(), "contract ended") {
		t.Errorf("refusal %q does not say the contract ended", err)
	}
}
