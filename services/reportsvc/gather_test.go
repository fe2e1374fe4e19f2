package reportsvc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/reportsvc"
)

// offboardingTrail is the registry's real audit trail in which each partner.suspend record reads
// as partner.offboard.confirmed, the record the offboarding workflow (package registry, issue 6)
// writes once no live credential is left: the workflow lives on another branch.
type offboardingTrail struct{ reg *registry.Registry }

func (a offboardingTrail) ListAudit(ctx context.Context, after uint64, limit int) ([]registry.AuditRecord, error) {
	recs, err := a.reg.ListAudit(ctx, after, limit)
	for i := range recs {
		if recs[i].Action == "partner.suspend" {
			recs[i].Action = reportsvc.OffboardingConfirmed
			recs[i].After = map[string]string{"live_credentials": "0", "revoked_credentials": "1"}
		}
	}
	return recs, err
}

func TestOffboardingRecordsInTheComplianceReport(t *testing.T) {
	e := newEnv(t)
	e.onboard()
	g, err := reportsvc.NewGatherer(reportsvc.GatherConfig{Registry: e.reg, Audit: offboardingTrail{e.reg}, Now: e.clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := posture.NewRunner(posture.RunnerConfig{Gather: g.Gather, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	client := treatyv1.NewReportServiceClient(grpctest.Serve(t, func(r grpc.ServiceRegistrar) {
		reportsvc.New(reportsvc.Config{Runner: runner, Gatherer: g, Logger: quiet}).Register(r)
	}))
	// The follower reads the trail incrementally: a first report, then two more offboardings.
	if _, err := client.GetComplianceReport(e.ctx, &treatyv1.GetComplianceReportRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acme", "bank"} {
		e.clock.Advance(time.Second)
		if _, _, err := e.reg.SuspendPartner(e.ctx, id, "offboarded", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.GetComplianceReport(e.ctx, &treatyv1.GetComplianceReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	offs := resp.GetSummary().GetLastOffboardings()
	if len(offs) != 2 || offs[0].GetPartnerId() != "bank" || offs[1].GetPartnerId() != "acme" || offs[0].GetActor() != "alice" ||
		offs[0].GetDetails()["revoked_credentials"] != "1" || offs[0].GetAuditSequence() <= offs[1].GetAuditSequence() {
		t.Fatalf("last offboardings %v", offs)
	}
	for _, it := range resp.GetItems() {
		if it.GetId() != "GV.SC-10" {
			continue
		}
		ev := evidence(it)
		if ev["offboardings_confirmed"] != "2" || ev["last_offboarding_confirmed"] != "bank at "+offs[0].GetConfirmTime().AsTime().UTC().Format(time.RFC3339) {
			t.Errorf("GV.SC-10 evidence %v", ev)
		}
	}
	// Without an issuer inventory or the revoker, the report says what it could not measure.
	if n := len(resp.GetNotes()); n != 2 {
		t.Errorf("notes %q, want the inventory's and the revoker's", resp.GetNotes())
	}
}
