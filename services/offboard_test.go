package services

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestServeOffboardPartnerRunsTheWorkflow checks that the registry's plain OffboardPartner RPC is
// the workflow, not a flag, wherever treaty serve gives the registry a revoker and an inventory:
// the partner ends TERMINATED with a confirmed offboarding record and its integration retired.
func TestServeOffboardPartnerRunsTheWorkflow(t *testing.T) {
	_, conn := serve(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := treatyv1.NewRegistryServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Partner: &treatyv1.Partner{Id: "acme", DisplayName: "Acme", OwnerTeam: "payments",
			ContractEndTime: timestamppb.New(time.Now().Add(365 * 24 * time.Hour))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Integration: &treatyv1.Integration{Id: "acme-crm", PartnerId: "acme", AllowedScopes: []string{"orders.read"},
			Audiences: []string{"https://api.example.com"}, MaxCredentialTtl: durationpb.New(10 * time.Minute),
			Environment: "production", Owner: "payments"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := reg.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "acme", Reason: "contract terminated", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetPartner().GetState(); got != treatyv1.PartnerState_PARTNER_STATE_TERMINATED || resp.GetSequence() == 0 {
		t.Fatalf("OffboardPartner = %s at sequence %d, want TERMINATED at a sequence", got, resp.GetSequence())
	}
	o, err := treatyv1.NewInventoryServiceClient(conn).GetOffboarding(ctx, &treatyv1.GetOffboardingRequest{PartnerId: "acme"})
	if err != nil {
		t.Fatalf("no offboarding record: %v", err)
	}
	rec := o.GetOffboarding()
	if rec.GetStep() != treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED || rec.GetConfirmTime() == nil ||
		rec.GetLiveCredentials() != 0 || rec.GetRetiredIntegrations() != 1 {
		t.Errorf("offboarding record = %v, want terminated, confirmed with zero live, one integration retired", rec)
	}
	in, err := reg.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: "acme-crm"})
	if err != nil || in.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED {
		t.Errorf("integration after offboarding: %v, %v; want RETIRED", in.GetIntegration().GetState(), err)
	}
}
