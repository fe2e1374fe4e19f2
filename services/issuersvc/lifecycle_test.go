package issuersvc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// No credential before ACTIVE: through the registry's full lifecycle, nothing a workload needs can
// exist until its partner and integration are active, and the issuer mints nothing while either is
// suspended; after reactivation it mints again.
func TestNoCredentialBeforeActive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reg := e.world.Registry
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Partner: &treatyv1.Partner{
		Id: "initech", DisplayName: "Initech", OwnerTeam: "vendor-risk", ContractEndTime: timestamppb.New(time.Now().Add(24 * time.Hour)),
	}}); err != nil {
		t.Fatal(err)
	}
	integ := &treatyv1.Integration{Id: "initech-api", PartnerId: "initech", AllowedScopes: []string{"invoices:read"},
		Audiences: []string{audience}, MaxCredentialTtl: durationpb.New(time.Hour), Environment: "production"}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: integ, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("%s: %v, want FAILED_PRECONDITION", what, err)
		}
	}
	createWorkload := func() error {
		_, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "initech-bot", IntegrationId: "initech-api",
			PublicKeyPem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n", Actor: "alice"})
		return err
	}
	refused("workload under a requested integration of a proposed partner", createWorkload())
	_, err := reg.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "initech-api", Actor: "alice"})
	refused("activate a requested integration", err)
	if _, err := reg.ApproveIntegration(ctx, &treatyv1.ApproveIntegrationRequest{Id: "initech-api", Actor: "ciso"}); err != nil {
		t.Fatal(err)
	}
	_, err = reg.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "initech-api", Actor: "alice"})
	refused("activate an integration of a proposed partner", err)
	if _, err := reg.ApprovePartner(ctx, &treatyv1.ApprovePartnerRequest{Id: "initech", Actor: "ciso"}); err != nil {
		t.Fatal(err)
	}
	_, err = reg.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "initech-api", Actor: "alice"})
	refused("activate an integration of an approved partner", err)
	if _, err := reg.ActivatePartner(ctx, &treatyv1.ActivatePartnerRequest{Id: "initech", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	refused("workload under an approved integration", createWorkload())
	if _, err := reg.ActivateIntegration(ctx, &treatyv1.ActivateIntegrationRequest{Id: "initech-api", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}

	// Active at last: a workload, and a credential.
	after := e.addWorkload("initech-bot", "initech-api") // the last registry write, which each issuance must see
	req := func() *treatyv1.IssueTokenRequest {
		return &treatyv1.IssueTokenRequest{ClientAssertion: e.assertion("initech-bot"), Scopes: []string{"invoices:read"}, Audience: audience,
			MinSequence: after}
	}
	e.issue(req())

	// Suspended integration: nothing; reactivated: again.
	si, err := reg.SuspendIntegration(ctx, &treatyv1.SuspendIntegrationRequest{Id: "initech-api", Reason: "review", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	after = si.GetSequence()
	if _, err := e.client.IssueToken(ctx, req()); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("issued under a suspended integration: %v", err)
	}
	ri, err := reg.ReactivateIntegration(ctx, &treatyv1.ReactivateIntegrationRequest{Id: "initech-api", Reason: "ok", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	after = ri.GetSequence()
	e.issue(req())

	// Suspended partner: nothing; reactivated: again.
	sp, err := reg.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "initech", Reason: "review", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	after = sp.GetSequence()
	if _, err := e.client.IssueToken(ctx, req()); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("issued under a suspended partner: %v", err)
	}
	rp, err := reg.ReactivatePartner(ctx, &treatyv1.ReactivatePartnerRequest{Id: "initech", Reason: "ok", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	after = rp.GetSequence()
	e.issue(req())
}
