package registrysvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// The full lifecycle over gRPC: create (proposed), approve, activate; an integration requested,
// approved, activated, suspended and reactivated; each answer carries the stored entity.
func TestLifecycleOverGRPC(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	c := f.client
	p, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("acme"), Actor: "alice"})
	if err != nil || p.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_PROPOSED {
		t.Fatalf("create = %v, %v", p, err)
	}
	_, err = c.ActivatePartner(ctx, &treatyv1.ActivatePartnerRequest{Id: "acme", Actor: "alice"})
	checkStatus(t, err, codes.FailedPrecondition, "")
	if !strings.Contains(status.Convert(err).Message(), "approve it first (treaty partner approve acme)") {
		t.Errorf("precondition message %q does not say what is missing", status.Convert(err).Message())
	}
	ap, err := c.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "acme", ApprovedBy: "ciso@example.com", Actor: "alice"})
	if err != nil || ap.GetPartner().GetApprovedBy() != "ciso@example.com" || ap.GetPartner().GetApproveTime() == nil || ap.GetSequence() == 0 {
		t.Fatalf("approve = %v, %v", ap, err)
	}
	act, err := c.ActivatePartner(ctx, &treatyv1.ActivatePartnerRequest{Id: "acme", Actor: "alice"})
	if err != nil || act.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_ACTIVE || act.GetSequence() != f.rev.Head() {
		t.Fatalf("activate = %v, %v", act, err)
	}

	in := integrationProto("orders", "acme")
	in.SourceRanges, in.Purpose, in.Owner = []string{"203.0.113.0/24"}, "order sync", "orders-team"
	ci, err := c.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: in, Actor: "alice"})
	if err != nil || ci.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED ||
		ci.GetIntegration().GetEnvironment() != "production" || ci.GetIntegration().GetSourceRanges()[0] != "203.0.113.0/24" {
		t.Fatalf("create integration = %v, %v", ci, err)
	}
	if _, err := c.ApproveIntegration(ctx, &treatyv1.ApproveIntegrationRequest{Id: "orders", ApprovalTicket: "SEC-9", Actor: "ciso"}); err != nil {
		t.Fatal(err)
	}
	ai, err := c.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "orders", Actor: "alice"})
	if err != nil || ai.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE || ai.GetIntegration().GetApprovedBy() != "ciso" ||
		ai.GetIntegration().GetApprovalTicket() != "SEC-9" {
		t.Fatalf("activate integration = %v, %v", ai, err)
	}
	si, err := c.SuspendIntegration(ctx, &treatyv1.SuspendIntegrationRequest{Id: "orders", Reason: "leak", Actor: "bob"})
	if err != nil || si.GetSequence() != f.rev.Head() {
		t.Fatalf("suspend = %v, %v", si, err)
	}
	ri, err := c.ReactivateIntegration(ctx, &treatyv1.ReactivateIntegrationRequest{Id: "orders", Reason: "rotated", Actor: "bob"})
	if err != nil || ri.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE {
		t.Fatalf("reactivate = %v, %v", ri, err)
	}
	if fi, _ := f.rev.State().Integration("orders"); fi.Block != nil || fi.Watermark != ri.GetSequence() {
		t.Errorf("feed integration after reactivation: %+v", fi)
	}
	rc, err := c.RecertifyIntegration(ctx, &treatyv1.RecertifyIntegrationRequest{Id: "orders", Actor: "auditor"})
	if err != nil || rc.GetIntegration().GetLastRecertifyTime() == nil {
		t.Fatalf("recertify = %v, %v", rc, err)
	}
	if _, err := c.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "acme", Reason: "audit", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	rp, err := c.ReactivatePartner(ctx, &treatyv1.ReactivatePartnerRequest{Id: "acme", Reason: "cleared", Actor: "bob"})
	if err != nil || rp.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_ACTIVE || rp.GetSequence() != f.rev.Head() {
		t.Fatalf("reactivate partner = %v, %v", rp, err)
	}
}

// Updates carry the etag: a stale one is ABORTED, a missing one INVALID_ARGUMENT.
func TestUpdatesOverGRPC(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	c := f.client
	p := f.mustPartner(t, "acme").GetPartner()
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	up, err := c.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{
		Partner:    &treatyv1.Partner{Id: "acme", Etag: p.GetEtag(), SecurityContact: "soc@acme.example", NextReviewTime: timestamppb.New(time.Now().Add(90 * 24 * time.Hour))},
		UpdateMask: mask("security_contact", "next_review_time"), Actor: "bob",
	})
	if err != nil || up.GetPartner().GetSecurityContact() != "soc@acme.example" || up.GetPartner().GetEtag() == p.GetEtag() ||
		up.GetPartner().GetDisplayName() != p.GetDisplayName() || up.GetSequence() != 0 {
		t.Fatalf("update = %v, %v", up, err)
	}
	_, err = c.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme", Etag: p.GetEtag(), OwnerTeam: "x"}, UpdateMask: mask("owner_team")})
	checkStatus(t, err, codes.Aborted, "")
	_, err = c.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme", OwnerTeam: "x"}, UpdateMask: mask("owner_team")})
	checkStatus(t, err, codes.InvalidArgument, "partner.etag")
	_, err = c.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme", Etag: "r9"}, UpdateMask: mask("state")})
	checkStatus(t, err, codes.InvalidArgument, "update_mask")
	_, err = c.UpdatePartner(ctx, &treatyv1.UpdatePartnerRequest{Partner: &treatyv1.Partner{Id: "acme", Etag: "r9"}})
	checkStatus(t, err, codes.InvalidArgument, "update_mask")

	i := f.mustIntegration(t, "orders", "acme").GetIntegration()
	ui, err := c.UpdateIntegration(ctx, &treatyv1.UpdateIntegrationRequest{
		Integration: &treatyv1.Integration{Id: "orders", Etag: i.GetEtag(), MaxCredentialTtl: durationpb.New(5 * time.Minute)},
		UpdateMask:  mask("max_credential_ttl"), Actor: "bob",
	})
	if err != nil || ui.GetIntegration().GetMaxCredentialTtl().AsDuration() != 5*time.Minute || ui.GetSequence() != f.rev.Head() {
		t.Fatalf("update integration = %v, %v", ui, err)
	}
	_, err = c.UpdateIntegration(ctx, &treatyv1.UpdateIntegrationRequest{Integration: &treatyv1.Integration{Id: "orders", Etag: i.GetEtag()}, UpdateMask: mask("owner")})
	checkStatus(t, err, codes.Aborted, "")
	_, err = c.UpdateIntegration(ctx, &treatyv1.UpdateIntegrationRequest{Integration: &treatyv1.Integration{Id: "orders", Etag: ui.GetIntegration().GetEtag(), SourceRanges: []string{"10.0.0.0/33"}},
		UpdateMask: mask("source_ranges")})
	checkStatus(t, err, codes.InvalidArgument, "integration.source_ranges")
}

// Every transition's bad request and refused precondition gets its exact status.
func TestLifecycleStatusCodes(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	c := f.client
	if _, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("fresh"), Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.mustPartner(t, "acme")
	if _, err := c.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: integrationProto("asked", "acme"), Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	noEnv := integrationProto("noenv", "acme")
	noEnv.Environment = ""
	call := func(f func() error) error { return f() }
	tests := []statusCase{
		{"approve: bad id", call(func() error {
			_, err := c.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "A!", Actor: "a"})
			return err
		}), codes.InvalidArgument, "id", ""},
		{"approve: nobody named", call(func() error {
			_, err := c.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "fresh"})
			return err
		}), codes.InvalidArgument, "approved_by", ""},
		{"approve: unknown", call(func() error {
			_, err := c.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "nobody", Actor: "a"})
			return err
		}), codes.NotFound, "", ""},
		{"approve: active", call(func() error {
			_, err := c.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "acme", Actor: "a"})
			return err
		}), codes.FailedPrecondition, "", "only a proposed partner"},
		{"activate: proposed", call(func() error {
			_, err := c.ActivatePartner(ctx, &treatyv1.ActivatePartnerRequest{Id: "fresh"})
			return err
		}), codes.FailedPrecondition, "", "approve it first"},
		{"reactivate: no reason", call(func() error {
			_, err := c.ReactivatePartner(ctx, &treatyv1.ReactivatePartnerRequest{Id: "acme"})
			return err
		}), codes.InvalidArgument, "reason", ""},
		{"reactivate: active", call(func() error {
			_, err := c.ReactivatePartner(ctx, &treatyv1.ReactivatePartnerRequest{Id: "acme", Reason: "x"})
			return err
		}), codes.FailedPrecondition, "", "nothing to reactivate"},
		{"create: activate without approver", call(func() error {
			_, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("new"), Activate: true})
			return err
		}), codes.InvalidArgument, "approved_by", ""},
		{"create: approver without activate", call(func() error {
			_, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("new"), ApprovedBy: "x"})
			return err
		}), codes.InvalidArgument, "approved_by", ""},
		{"create integration: no environment", call(func() error {
			_, err := c.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: noEnv})
			return err
		}), codes.InvalidArgument, "integration.environment", ""},
		{"create integration active under a proposed partner", call(func() error {
			_, err := c.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: integrationProto("early", "fresh"), Activate: true, ApprovedBy: "x"})
			return err
		}), codes.FailedPrecondition, "", "treaty partner approve fresh"},
		{"activate integration: requested", call(func() error {
			_, err := c.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "asked"})
			return err
		}), codes.FailedPrecondition, "", "approve it first (treaty integration approve asked)"},
		{"suspend integration: requested", call(func() error {
			_, err := c.SuspendIntegration(ctx, &treatyv1.SuspendIntegrationRequest{Id: "asked", Reason: "x"})
			return err
		}), codes.FailedPrecondition, "", "approve it first"},
		{"suspend integration: no reason", call(func() error {
			_, err := c.SuspendIntegration(ctx, &treatyv1.SuspendIntegrationRequest{Id: "asked"})
			return err
		}), codes.InvalidArgument, "reason", ""},
		{"recertify: unknown", call(func() error {
			_, err := c.RecertifyIntegration(ctx, &treatyv1.RecertifyIntegrationRequest{Id: "nothing"})
			return err
		}), codes.NotFound, "", ""},
		{"list: bad environment", call(func() error {
			_, err := c.ListIntegrations(ctx, &treatyv1.ListIntegrationsRequest{Environment: "PROD"})
			return err
		}), codes.InvalidArgument, "environment", ""},
		{"list: bad state", call(func() error {
			_, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{State: 99})
			return err
		}), codes.InvalidArgument, "state", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkStatus(t, tc.err, tc.code, tc.field)
			if tc.msg != "" && !strings.Contains(status.Convert(tc.err).Message(), tc.msg) {
				t.Errorf("message %q does not say %q", status.Convert(tc.err).Message(), tc.msg)
			}
		})
	}
}

// Filtered lists over gRPC, paged with their tokens.
func TestFilteredListsOverGRPC(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	c := f.client
	for _, id := range []string{"a", "b", "c", "d"} {
		f.mustPartner(t, id)
	}
	if _, err := c.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: partnerProto("e")}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	token := ""
	for {
		resp, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.GetPartners() {
			ids = append(ids, p.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "a,b,c,d" {
		t.Errorf("active partners %v", ids)
	}
	first, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: 1, PageToken: first.GetNextPageToken()})
	checkStatus(t, err, codes.InvalidArgument, "page_token")
	proposed, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{State: treatyv1.PartnerState_PARTNER_STATE_PROPOSED})
	if err != nil || len(proposed.GetPartners()) != 1 || proposed.GetPartners()[0].GetId() != "e" || proposed.GetNextPageToken() != "" {
		t.Errorf("proposed partners %v, %v", proposed, err)
	}
	soon, err := c.ListPartners(ctx, &treatyv1.ListPartnersRequest{ContractEndBefore: timestamppb.New(time.Now())})
	if err != nil || len(soon.GetPartners()) != 0 {
		t.Errorf("contracts ending before now: %v, %v", soon, err)
	}
}

// The governance fields are checked at the edge: a malformed one is INVALID_ARGUMENT naming it.
func TestGovernanceFieldsBadRequests(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	with := func(edit func(*treatyv1.Partner)) error {
		p := partnerProto("acme")
		edit(p)
		_, err := f.client.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Partner: p})
		return err
	}
	tests := []struct {
		name  string
		edit  func(*treatyv1.Partner)
		field string
	}{
		{"bad contract start", func(p *treatyv1.Partner) { p.ContractStartTime = &timestamppb.Timestamp{Nanos: -1} }, "partner.contract_start_time"},
		{"start after end", func(p *treatyv1.Partner) { p.ContractStartTime = timestamppb.New(contractEnd.Add(time.Hour)) }, "partner.contract_start_time"},
		{"unknown relationship", func(p *treatyv1.Partner) { p.RelationshipType = 42 }, "partner.relationship_type"},
		{"unknown classification", func(p *treatyv1.Partner) { p.DataClassification = 42 }, "partner.data_classification"},
		{"negative breach notice", func(p *treatyv1.Partner) { p.BreachNoticeHours = -3 }, "partner.breach_notice_hours"},
		{"control character in a contact", func(p *treatyv1.Partner) { p.SecurityContact = "soc\n@x" }, "partner.security_contact"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkStatus(t, with(tc.edit), codes.InvalidArgument, tc.field) })
	}
}
