package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

const (
	partnerActive     = treatyv1.PartnerState_PARTNER_STATE_ACTIVE
	partnerProposed   = treatyv1.PartnerState_PARTNER_STATE_PROPOSED
	partnerApproved   = treatyv1.PartnerState_PARTNER_STATE_APPROVED
	partnerSuspended  = treatyv1.PartnerState_PARTNER_STATE_SUSPENDED
	partnerTerminated = treatyv1.PartnerState_PARTNER_STATE_TERMINATED
)

func TestCreatePartnerRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "taken")
	tests := []struct {
		name  string
		edit  func(*registry.Partner)
		actor string
		kind  fail.Kind
		field string
	}{
		{"missing id", func(p *registry.Partner) { p.ID = "" }, "", fail.Invalid, "partner.id"},
		{"bad id", func(p *registry.Partner) { p.ID = "Acme Corp" }, "", fail.Invalid, "partner.id"},
		{"id too long", func(p *registry.Partner) { p.ID = strings.Repeat("a", 64) }, "", fail.Invalid, "partner.id"},
		{"missing display name", func(p *registry.Partner) { p.DisplayName = "" }, "", fail.Invalid, "partner.display_name"},
		{"blank display name", func(p *registry.Partner) { p.DisplayName = "   " }, "", fail.Invalid, "partner.display_name"},
		{"display name too long", func(p *registry.Partner) { p.DisplayName = strings.Repeat("é", 201) }, "", fail.Invalid, "partner.display_name"},
		{"display name with control", func(p *registry.Partner) { p.DisplayName = "Acme\nCorp" }, "", fail.Invalid, "partner.display_name"},
		{"display name not utf8", func(p *registry.Partner) { p.DisplayName = "Acme\xff" }, "", fail.Invalid, "partner.display_name"},
		{"missing owner team", func(p *registry.Partner) { p.OwnerTeam = "" }, "", fail.Invalid, "partner.owner_team"},
		{"missing contract end", func(p *registry.Partner) { p.ContractEnd = time.Time{} }, "", fail.Invalid, "partner.contract_end_time"},
		{"contract ended", func(p *registry.Partner) { p.ContractEnd = now.Add(-time.Hour) }, "", fail.Invalid, "partner.contract_end_time"},
		{"contract end out of range", func(p *registry.Partner) { p.ContractEnd = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "", fail.Invalid, "partner.contract_end_time"},
		{"contract ends now", func(p *registry.Partner) { p.ContractEnd = now }, "", fail.Invalid, "partner.contract_end_time"},
		{"actor too long", func(*registry.Partner) {}, strings.Repeat("a", 257), fail.Invalid, "actor"},
		{"duplicate id", func(p *registry.Partner) { p.ID = "taken" }, "", fail.AlreadyExists, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := partner("acme")
			tc.edit(&p)
			_, seq, err := e.reg.CreatePartner(context.Background(), p, tc.actor, active)
			checkErr(t, err, tc.kind, tc.field)
			if seq != 0 {
				t.Errorf("a refused write returned sequence %d", seq)
			}
		})
	}
	// Nothing but the first partner was written, audited or published.
	if got, _, _ := e.reg.ListPartners(context.Background(), 0, ""); len(got) != 1 {
		t.Errorf("%d partners stored, want 1", len(got))
	}
	if recs, _ := e.reg.ListAudit(context.Background(), 0, 0); len(recs) != 1 {
		t.Errorf("%d audit records, want 1", len(recs))
	}
	if e.rev.Head() != 1 {
		t.Errorf("feed head %d, want 1", e.rev.Head())
	}
}

func TestCreatePartnerPublishesAndStores(t *testing.T) {
	e := newEnv(t)
	in := partner("acme")
	in.ContractEnd = time.Date(2031, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	// Every governance field is stored as given, times in UTC.
	in.LegalName, in.RelationshipType = "Acme Corporation Ltd", treatyv1.RelationshipType_RELATIONSHIP_TYPE_SAAS
	in.AccountableOwner, in.BackupOwner, in.SecurityContact = "ana@example.com", "ben@example.com", "security@acme.example"
	in.BreachNoticeHours, in.ContractID = 72, "C-2030-17"
	in.ContractStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	in.DataClassification = treatyv1.DataClassification_DATA_CLASSIFICATION_CONFIDENTIAL
	in.LastAssessment, in.LastAssessmentResult = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC), "passed with two findings"
	in.NextReview = time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	p, seq, err := e.reg.CreatePartner(context.Background(), in, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ContractEnd, want.ContractStart = in.ContractEnd.UTC(), in.ContractStart.UTC()
	want.State, want.RiskTier, want.Created, want.Updated, want.Etag = partnerProposed, registry.DefaultRiskTier, now, now, p.Etag
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("created partner (-want +got):\n%s", diff)
	}
	if p.Etag == "" {
		t.Error("no etag")
	}
	got, err := e.reg.GetPartner(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("read back (-created +read):\n%s", diff)
	}

	// The sequence is that of the PartnerChanged event, which the revoker applied.
	ev := e.event(t, seq)
	pc := ev.GetPartnerChanged()
	if pc.GetPartnerId() != "acme" || pc.GetState() != partnerProposed || !pc.GetContractEndTime().AsTime().Equal(in.ContractEnd) || ev.GetActor() != "alice" {
		t.Errorf("event %d = %v", seq, ev)
	}
	fp, ok := e.rev.State().Partner("acme")
	if !ok || fp.State != partnerProposed || !fp.ContractEnd.Equal(in.ContractEnd) || fp.Block != nil {
		t.Errorf("revoker's partner = %+v, %v", fp, ok)
	}
}

func TestGetPartnerErrors(t *testing.T) {
	e := newEnv(t)
	_, err := e.reg.GetPartner(context.Background(), "nobody")
	checkErr(t, err, fail.NotFound, "")
	_, err = e.reg.GetPartner(context.Background(), "Not An Id")
	checkErr(t, err, fail.Invalid, "id")
}

func TestSuspendPartnerBlocksInFeed(t *testing.T) {
	e := newEnv(t)
	created := e.mustPartner(t, "acme")
	p, seq, err := e.reg.SuspendPartner(context.Background(), "acme", "unpaid invoices", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if p.State != partnerSuspended || p.Etag == created.Etag || p.Created != created.Created {
		t.Errorf("suspended partner = %+v", p)
	}
	// The change comes first, then the block, whose sequence is returned.
	changed, blocked := e.event(t, seq-1), e.event(t, seq)
	if changed.GetPartnerChanged().GetState() != partnerSuspended || changed.GetReason() != "unpaid invoices" || changed.GetActor() != "bob" {
		t.Errorf("event %d = %v", seq-1, changed)
	}
	b := blocked.GetBlocked()
	if b.GetTargetKind() != treatyv1.TargetKind_TARGET_KIND_PARTNER || b.GetTargetId() != "acme" || b.GetPermanent() ||
		blocked.GetReason() != "unpaid invoices" || blocked.GetActor() != "bob" {
		t.Errorf("event %d = %v", seq, blocked)
	}
	fp, _ := e.rev.State().Partner("acme")
	if fp.State != partnerSuspended || fp.Block == nil || fp.Block.Sequence != seq || fp.Block.Permanent || fp.Block.Reason != "unpaid invoices" {
		t.Errorf("revoker's partner = %+v (block %+v)", fp, fp.Block)
	}
}

func TestPartnerLifecycle(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustPartner(t, "globex")
	ctx := context.Background()
	steps := []struct {
		name    string
		op      func(id, reason string) (registry.Partner, uint64, error)
		id      string
		reason  string
		kind    fail.Kind // Internal means success
		field   string
		state   treatyv1.PartnerState
		mention string // in the error message
	}{
		{"suspend needs a reason", suspendOp(e), "acme", " ", fail.Invalid, "reason", 0, ""},
		{"suspend needs a valid id", suspendOp(e), "ACME", "r", fail.Invalid, "id", 0, ""},
		{"suspend unknown", suspendOp(e), "nobody", "r", fail.NotFound, "", 0, ""},
		{"offboard needs a reason", offboardOp(e), "acme", "", fail.Invalid, "reason", 0, ""},
		{"offboard unknown", offboardOp(e), "nobody", "r", fail.NotFound, "", 0, ""},
		{"suspend active", suspendOp(e), "acme", "incident 42", fail.Internal, "", partnerSuspended, ""},
		{"suspend again", suspendOp(e), "acme", "r", fail.Precondition, "", 0, "suspended"},
		{"offboard suspended", offboardOp(e), "acme", "contract over", fail.Internal, "", partnerTerminated, ""},
		{"offboard terminated", offboardOp(e), "acme", "r", fail.Precondition, "", 0, "terminated"},
		{"suspend terminated", suspendOp(e), "acme", "r", fail.Precondition, "", 0, "terminated"},
		{"offboard active", offboardOp(e), "globex", "merger", fail.Internal, "", partnerTerminated, ""},
	}
	for _, s := range steps {
		head := e.rev.Head()
		p, seq, err := s.op(s.id, s.reason)
		if s.kind != fail.Internal {
			checkErr(t, err, s.kind, s.field)
			if !strings.Contains(err.Error(), s.mention) {
				t.Errorf("%s: error %q does not mention %q", s.name, err, s.mention)
			}
			if e.rev.Head() != head {
				t.Errorf("%s: a refused change was published", s.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if p.State != s.state || seq != head+2 {
			t.Errorf("%s: state %v at %d, want %v at %d", s.name, p.State, seq, s.state, head+2)
		}
		if got, _ := e.reg.GetPartner(ctx, s.id); got.State != s.state {
			t.Errorf("%s: stored state %v", s.name, got.State)
		}
	}
	// Offboarding blocks permanently; the returned sequence is that permanent block's.
	for _, id := range []string{"acme", "globex"} {
		fp, _ := e.rev.State().Partner(id)
		if fp.State != partnerTerminated || fp.Block == nil || !fp.Block.Permanent {
			t.Errorf("revoker's %s = %+v (block %+v)", id, fp, fp.Block)
		}
	}
	ev := e.event(t, e.rev.Head())
	if b := ev.GetBlocked(); b.GetTargetId() != "globex" || !b.GetPermanent() || ev.GetReason() != "merger" {
		t.Errorf("last event = %v", ev)
	}
}

func suspendOp(e *env) func(id, reason string) (registry.Partner, uint64, error) {
	return func(id, reason string) (registry.Partner, uint64, error) {
		return e.reg.SuspendPartner(context.Background(), id, reason, "bob")
	}
}

func offboardOp(e *env) func(id, reason string) (registry.Partner, uint64, error) {
	return func(id, reason string) (registry.Partner, uint64, error) {
		return e.reg.OffboardPartner(context.Background(), id, reason, "bob")
	}
}
