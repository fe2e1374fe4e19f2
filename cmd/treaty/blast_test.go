package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// fixedInventory is an inventory that always finds the same credentials.
type fixedInventory []string

func (f fixedInventory) LiveCredentials(context.Context, revoker.InventoryQuery) (uint64, []string, error) {
	return uint64(len(f)), f, nil
}

func TestRevokeDryRun(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Inventory: fixedInventory{"jti-2", "jti-1"}})
	if err != nil {
		t.Fatal(err)
	}
	change := func(id string, c *treatyv1.Event) *treatyv1.PublishEntry {
		return &treatyv1.PublishEntry{RequestId: id, Event: c}
	}
	if _, err := log.Publish(context.Background(), []*treatyv1.PublishEntry{
		change("p", &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: "acme", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}),
		change("i", &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{
			IntegrationId: "orders", PartnerId: "acme", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE}}}),
		change("w", &treatyv1.Event{Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{
			WorkloadId: "bot", IntegrationId: "orders", PartnerId: "acme", State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE}}}),
	}); err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log})
	t.Cleanup(svc.Close)
	addr := grpctest.Serve(t, svc.Register).Target()
	head := log.Head()

	code, out, errOut := treaty(t, "revoke", "partner", "acme", "--dry-run", "--revoker", addr)
	for _, want := range []string{"nothing was revoked", "partners cut off:", "1: acme", "integrations cut off:", "1: orders",
		"workloads cut off:", "1: bot", "live credentials killed:", "2\n", "soonest-expiring last", "  jti-2\n  jti-1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != exitOK || errOut != "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	code, out, _ = treaty(t, "revoke", "workload", "bot", "--dry-run", "--reason", "checking", "-o", "json", "--revoker", addr)
	var got struct {
		BlastRadius struct {
			LiveCredentials string   `json:"live_credentials"`
			WorkloadIDs     []string `json:"workload_ids"`
		} `json:"blast_radius"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got.BlastRadius.LiveCredentials != "2" ||
		len(got.BlastRadius.WorkloadIDs) != 1 {
		t.Errorf("-o json: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = treaty(t, "revoke", "partner", "acme", "--dry-run", "-o", "csv", "--revoker", addr)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != exitOK || err != nil || len(rows) != 2 || rows[0][3] != "live_credentials" || rows[1][0] != "acme" || rows[1][3] != "2" || rows[1][5] != "jti-2 jti-1" {
		t.Errorf("-o csv: exit %d, %v, %q", code, err, rows)
	}
	if log.Head() != head {
		t.Errorf("a dry run appended: head %d, want %d", log.Head(), head)
	}
	// A real revocation still needs its reason, and restore has no dry run.
	if code, _, errOut := treaty(t, "revoke", "partner", "acme", "--revoker", addr); code != exitUsage || !strings.Contains(errOut, "--reason is required") {
		t.Errorf("revoke without reason: exit %d, %q", code, errOut)
	}
	if code, _, errOut := treaty(t, "restore", "partner", "acme", "--dry-run", "--revoker", addr); code != exitUsage || !strings.Contains(errOut, "dry-run") {
		t.Errorf("restore --dry-run: exit %d, %q", code, errOut)
	}
}
