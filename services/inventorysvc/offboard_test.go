package inventorysvc_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/registry"
)

// offboardCredentials is how many live credentials the acceptance test offboards: 10,000 (issue
// 6), or TREATY_OFFBOARD_CREDENTIALS, or 500 with -short.
func offboardCredentials(t *testing.T) int {
	if s := os.Getenv("TREATY_OFFBOARD_CREDENTIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TREATY_OFFBOARD_CREDENTIALS=%q is not a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 500
	}
	return 10000
}

// TestOffboardLiveCredentials is issue 6's acceptance test: a partner with 10,000 live
// credentials, issued through the real issuer, is offboarded through the InventoryService; every
// credential is revoked one by one in the feed, the issuer's inventory confirms zero live, the
// partner ends TERMINATED with its integration and workloads retired, and the offboarding record
// says so. Another partner's credentials are untouched, and running the offboarding again changes
// nothing.
func TestOffboardLiveCredentials(t *testing.T) {
	n := offboardCredentials(t)
	e := newEnv(t)
	const partner, bystander = "acme", "globex"
	wls := e.onboard(partner, 4)
	others := e.onboard(bystander, 1)

	start := time.Now()
	e.mint(wls, n)
	e.mint(others, 5)
	t.Logf("issued %d credentials through the issuer in %s", n+5, time.Since(start).Round(time.Millisecond))
	if got := e.live(partner); got != uint64(n) {
		t.Fatalf("%d live credentials before offboarding, want %d", got, n)
	}

	start = time.Now()
	progress, rec, err := e.offboard(context.Background(), partner)
	if err != nil {
		t.Fatalf("RunOffboarding: %v", err)
	}
	t.Logf("offboarded %d live credentials in %s (%d progress reports)", n, time.Since(start).Round(time.Millisecond), len(progress))

	switch {
	case rec.GetStep() != treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED:
		t.Errorf("step = %s, want TERMINATED", rec.GetStep())
	case rec.GetRevokedCredentials() != uint64(n):
		t.Errorf("revoked_credentials = %d, want %d", rec.GetRevokedCredentials(), n)
	case rec.GetLiveCredentials() != 0 || rec.GetConfirmTime() == nil:
		t.Errorf("confirmation: %d live at %v, want 0 live and a time", rec.GetLiveCredentials(), rec.GetConfirmTime())
	case rec.GetConfirmedAtSequence() < rec.GetLastRevocationSequence() || rec.GetLastRevocationSequence() == 0:
		t.Errorf("confirmed at sequence %d, last revocation at %d", rec.GetConfirmedAtSequence(), rec.GetLastRevocationSequence())
	case rec.GetRetiredIntegrations() != 1 || rec.GetRetiredWorkloads() != 4:
		t.Errorf("retired %d integrations and %d workloads, want 1 and 4", rec.GetRetiredIntegrations(), rec.GetRetiredWorkloads())
	case !ordered(rec.GetStartTime().AsTime(), rec.GetRevokeTime().AsTime(), rec.GetRetireTime().AsTime(),
		rec.GetConfirmTime().AsTime(), rec.GetTerminateTime().AsTime()):
		t.Errorf("step times out of order: %v", rec)
	}
	var revokedProgress bool
	for _, p := range progress {
		if p.GetStep() == treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED && p.GetTotal() == uint64(n) && p.GetDone() > 0 {
			revokedProgress = true
		}
	}
	if !revokedProgress {
		t.Errorf("no revocation progress out of %d among %d reports", n, len(progress))
	}

	if got := e.live(partner); got != 0 {
		t.Errorf("the inventory counts %d live credentials after offboarding", got)
	}
	if got := e.live(bystander); got != 5 {
		t.Errorf("the bystander has %d live credentials, want 5", got)
	}
	p, err := e.world.Registry.GetPartner(context.Background(), &treatyv1.GetPartnerRequest{Id: partner})
	if err != nil || p.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_TERMINATED {
		t.Errorf("partner after offboarding: %v, %v; want TERMINATED", p.GetPartner().GetState(), err)
	}
	in, err := e.world.Registry.GetIntegration(context.Background(), &treatyv1.GetIntegrationRequest{Id: partner + "-api"})
	if err != nil || in.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED {
		t.Errorf("integration after offboarding: %v, %v; want RETIRED", in.GetIntegration().GetState(), err)
	}

	// The feed carries one revocation per credential, each naming the partner.
	revocations := 0
	for _, ev := range e.world.Events() {
		if r := ev.GetCredentialRevoked(); r != nil {
			revocations++
			if r.GetPartnerId() != partner {
				t.Fatalf("revocation of %s names partner %q", r.GetJti(), r.GetPartnerId())
			}
		}
	}
	if revocations != n {
		t.Errorf("%d credential revocations in the feed, want %d", revocations, n)
	}

	// The audit trail has each step, in order, with the evidence.
	audit, err := treatyv1.NewAuditServiceClient(e.world.Conn()).ListAuditRecords(context.Background(),
		&treatyv1.ListAuditRecordsRequest{Target: "partner/" + partner, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range audit.GetRecords() {
		switch r.GetAction() {
		case "partner.offboard.start", "partner.offboard.revoked", "partner.offboard.confirmed", "partner.terminate":
			actions = append(actions, r.GetAction())
		}
		if r.GetAction() == "partner.offboard.revoked" && r.GetAfter()["revoked_credentials"] != strconv.Itoa(n) {
			t.Errorf("partner.offboard.revoked records %q credentials, want %d", r.GetAfter()["revoked_credentials"], n)
		}
		if r.GetAction() == "partner.offboard.confirmed" && r.GetAfter()["live_credentials"] != "0" {
			t.Errorf("partner.offboard.confirmed records %q live", r.GetAfter()["live_credentials"])
		}
	}
	if diff := cmp.Diff([]string{"partner.offboard.start", "partner.offboard.revoked", "partner.offboard.confirmed", "partner.terminate"}, actions); diff != "" {
		t.Errorf("audit actions (-want +got):\n%s", diff)
	}
	if v, err := treatyv1.NewAuditServiceClient(e.world.Conn()).VerifyAudit(context.Background(), &treatyv1.VerifyAuditRequest{}); err != nil || v.GetBroken() != nil {
		t.Errorf("VerifyAudit after offboarding = %v, %v", v, err)
	}

	got, err := e.client.GetOffboarding(context.Background(), &treatyv1.GetOffboardingRequest{PartnerId: partner})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got.GetOffboarding(), protocmp.Transform()); diff != "" {
		t.Errorf("GetOffboarding differs from the workflow's record (-run +get):\n%s", diff)
	}
	_, again, err := e.offboard(context.Background(), partner)
	if err != nil {
		t.Fatalf("RunOffboarding again: %v", err)
	}
	if diff := cmp.Diff(rec, again, protocmp.Transform()); diff != "" {
		t.Errorf("running a finished offboarding again changed its record (-first +again):\n%s", diff)
	}
}

func ordered(times ...time.Time) bool {
	for k := 1; k < len(times); k++ {
		if times[k].Before(times[k-1]) {
			return false
		}
	}
	return true
}

// TestOffboardResumes: an offboarding interrupted while it revokes (the caller goes away) stays
// at its last step; running it again finishes it, and every credential ends revoked once.
func TestOffboardResumes(t *testing.T) {
	const n = 600
	e := newEnv(t)
	e.mint(e.onboard("acme", 2), n)

	ctx, cancel := context.WithCancel(context.Background())
	stream, err := e.client.RunOffboarding(ctx, &treatyv1.RunOffboardingRequest{PartnerId: "acme", Reason: "contract ended", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("the offboarding ended before it revoked anything: %v", err)
		}
		if p := m.GetProgress(); p.GetStep() == treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED && p.GetDone() > 0 {
			break
		}
	}
	cancel()
	// The server notices the cancelled stream and stops; wait for its record to say where.
	var stopped *treatyv1.Offboarding
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := e.client.GetOffboarding(context.Background(), &treatyv1.GetOffboardingRequest{PartnerId: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		stopped = got.GetOffboarding()
		// A second run waits for the first (one offboarding at a time), so this also proves the
		// first has stopped once the second starts.
		if stopped.GetRevokedCredentials() > 0 || time.Now().After(deadline) {
			break
		}
	}
	if stopped.GetStep() == treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED {
		t.Skip("the offboarding finished before the cancellation reached it; nothing to resume")
	}

	_, rec, err := e.offboard(context.Background(), "acme")
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if rec.GetStep() != treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED || rec.GetLiveCredentials() != 0 {
		t.Fatalf("resumed offboarding ended at %s with %d live", rec.GetStep(), rec.GetLiveCredentials())
	}
	if rec.GetReason() != "contract ended" || rec.GetStartTime().AsTime() != stopped.GetStartTime().AsTime() {
		t.Errorf("the resumed record lost its start: %v", rec)
	}
	// A revocation appended just before the interruption may be counted as already applied on
	// resume, so the count is at most n; the feed holds exactly one revocation per credential.
	if rec.GetRevokedCredentials() > n || rec.GetRevokedCredentials() < n-uint64(64) {
		t.Errorf("revoked_credentials = %d, want about %d", rec.GetRevokedCredentials(), n)
	}
	revocations := 0
	for _, ev := range e.world.Events() {
		if ev.GetCredentialRevoked() != nil {
			revocations++
		}
	}
	if revocations != n || e.live("acme") != 0 {
		t.Errorf("%d revocations in the feed and %d live, want %d and 0", revocations, e.live("acme"), n)
	}
}

// TestOffboardRefused: bad requests are INVALID_ARGUMENT naming the field; a partner that does
// not exist is NOT_FOUND, as is the record of a partner never offboarded.
func TestOffboardRefused(t *testing.T) {
	e := newEnv(t)
	e.onboard("acme", 1)
	ctx := context.Background()
	tests := []struct {
		name string
		req  *treatyv1.RunOffboardingRequest
		code codes.Code
	}{
		{"bad id", &treatyv1.RunOffboardingRequest{PartnerId: "Acme", Reason: "x", Actor: "a"}, codes.InvalidArgument},
		{"no reason", &treatyv1.RunOffboardingRequest{PartnerId: "acme", Actor: "a"}, codes.InvalidArgument},
		{"unknown partner", &treatyv1.RunOffboardingRequest{PartnerId: "initech", Reason: "x", Actor: "a"}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := e.client.RunOffboarding(ctx, tt.req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != tt.code {
				t.Fatalf("RunOffboarding: %v, want %s", err, tt.code)
			}
		})
	}
	if _, err := e.client.GetOffboarding(ctx, &treatyv1.GetOffboardingRequest{PartnerId: "acme"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetOffboarding of a partner never offboarded: %v, want NOT_FOUND", err)
	}
	if _, err := e.client.GetOffboarding(ctx, &treatyv1.GetOffboardingRequest{PartnerId: "-"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetOffboarding with a bad id: %v, want INVALID_ARGUMENT", err)
	}
}

// TestContractEndOffboards: when a partner's contract end passes, the registry's scheduler moves
// it to OFFBOARDING and runs the whole workflow on its own, to TERMINATED with a confirmed record.
func TestContractEndOffboards(t *testing.T) {
	e := newEnv(t)
	end := time.Now().Add(3 * time.Second)
	e.world.CreatePartner("acme", end)
	e.world.CreateIntegration(issuertest.Integration{
		ID: "acme-api", PartnerID: "acme", MaxTTL: time.Hour, Scopes: []string{"orders:read"}, Audiences: []string{audience},
	})
	e.mint([]issuertest.Workload{e.world.CreateWorkload("acme-bot", "acme-api")}, 20)
	if time.Now().After(end) {
		t.Skip("the machine is too slow to issue before the contract ends")
	}
	var rec *treatyv1.Offboarding
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := e.client.GetOffboarding(context.Background(), &treatyv1.GetOffboardingRequest{PartnerId: "acme"})
		if err == nil && got.GetOffboarding().GetStep() == treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED {
			rec = got.GetOffboarding()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the contract ended but the offboarding did not finish: %v, %v", got, err)
		}
	}
	// The issuer caps every credential's lifetime at the contract end, so at the contract end
	// none is left to revoke: the record confirms zero live with nothing revoked.
	if rec.GetActor() != registry.ContractActor || rec.GetRevokedCredentials() != 0 || rec.GetLiveCredentials() != 0 ||
		rec.GetConfirmTime() == nil || rec.GetRetiredWorkloads() != 1 {
		t.Errorf("offboarding at contract end: %v", rec)
	}
	if got := e.live("acme"); got != 0 {
		t.Errorf("%d live credentials after the contract-end offboarding", got)
	}
}
