package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
)

const (
	integrationRetired = treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED
	workloadActive     = treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE
	workloadRetired    = treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED
)

func TestRetireWorkloadBlocksForGood(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	created := e.mustWorkload(t, "bot", "orders")
	head := e.rev.Head()

	w, seq, err := e.reg.RetireWorkload(ctx, "bot", "key leaked", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if w.State != workloadRetired || w.Etag == created.Etag || seq != head+2 {
		t.Errorf("retired workload %+v at %d, want retired at %d", w, seq, head+2)
	}
	if got, _ := e.reg.GetWorkload(ctx, "bot"); got.State != workloadRetired {
		t.Errorf("stored state %v", got.State)
	}
	// The change first, then the permanent block, whose sequence is returned.
	if ev := e.event(t, seq-1); ev.GetWorkloadChanged().GetState() != workloadRetired || ev.GetActor() != "bob" || ev.GetReason() != "key leaked" {
		t.Errorf("event %d = %v", seq-1, ev)
	}
	if ev := e.event(t, seq); describe(ev) != "blocked workload/bot" || !ev.GetBlocked().GetPermanent() || ev.GetReason() != "key leaked" {
		t.Errorf("event %d = %v", seq, ev)
	}
	fw, _ := e.rev.State().Workload("bot")
	if fw.State != workloadRetired || fw.Block == nil || !fw.Block.Permanent || fw.Block.Sequence != seq {
		t.Errorf("revoker's workload = %+v (block %+v)", fw, fw.Block)
	}
	// Final: no restore through the revoker, no second retirement.
	_, err = e.rev.Restore(ctx, revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_WORKLOAD, Target: "bot", Reason: "oops"})
	checkErr(t, err, fail.Precondition, "")
	_, _, err = e.reg.RetireWorkload(ctx, "bot", "again", "bob")
	checkErr(t, err, fail.Precondition, "")
	if !strings.Contains(err.Error(), "already retired") {
		t.Errorf("error %q does not say it is already retired", err)
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	last := recs[len(recs)-1]
	if last.Action != "workload.retire" || last.Target != "workload/bot" || last.Reason != "key leaked" || last.Actor != "bob" ||
		last.Before["state"] != "active" || last.After["state"] != "retired" {
		t.Errorf("audit record = %+v", last)
	}
	if e.rev.Head() != seq {
		t.Errorf("feed head %d, want %d: a refused retirement was published", e.rev.Head(), seq)
	}
}

func TestRetireIntegrationRetiresItsWorkloads(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustIntegration(t, "billing", "acme")
	e.mustWorkload(t, "a", "orders")
	e.mustWorkload(t, "b", "orders")
	e.mustWorkload(t, "other", "billing")
	if _, _, err := e.reg.RetireWorkload(ctx, "b", "replaced", "bob"); err != nil {
		t.Fatal(err)
	}
	head := e.rev.Head()

	i, seq, err := e.reg.RetireIntegration(ctx, "orders", "contract scope ended", "bob")
	if err != nil {
		t.Fatal(err)
	}
	// Integration changed, workload a retired (b already was), then the permanent block.
	if i.State != integrationRetired || seq != head+3 {
		t.Fatalf("retired integration %+v at %d, want retired at %d", i, seq, head+3)
	}
	want := []string{"integration_changed integration/orders", "workload_changed workload/a", "blocked integration/orders"}
	for k, w := range want {
		if got := describe(e.event(t, head+1+uint64(k))); got != w {
			t.Errorf("event %d is %q, want %q", head+1+uint64(k), got, w)
		}
	}
	if !e.event(t, seq).GetBlocked().GetPermanent() {
		t.Error("the integration's block is not permanent")
	}
	for id, state := range map[string]treatyv1.WorkloadState{"a": workloadRetired, "b": workloadRetired, "other": workloadActive} {
		if w, _ := e.reg.GetWorkload(ctx, id); w.State != state {
			t.Errorf("workload %s is %v, want %v", id, w.State, state)
		}
		if fw, _ := e.rev.State().Workload(id); fw.State != state {
			t.Errorf("revoker's workload %s is %v, want %v", id, fw.State, state)
		}
	}
	fi, _ := e.rev.State().Integration("orders")
	if fi.State != integrationRetired || fi.Block == nil || !fi.Block.Permanent {
		t.Errorf("revoker's integration = %+v (block %+v)", fi, fi.Block)
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	if last := recs[len(recs)-1]; last.Action != "integration.retire" || last.After["retired_workloads"] != "a" {
		t.Errorf("audit record = %+v", last)
	}
	// Workloads can no longer be created under it.
	_, _, err = e.reg.CreateWorkload(ctx, "late", "orders", publicKeyPEM(t), "", "alice")
	checkErr(t, err, fail.Precondition, "")
}

func TestRetireRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")
	e.mustPartner(t, "gone")
	e.mustIntegration(t, "gone-api", "gone")
	e.mustWorkload(t, "gone-bot", "gone-api")
	if _, _, err := e.reg.OffboardPartner(ctx, "gone", "merger", "bob"); err != nil {
		t.Fatal(err)
	}
	e.mustIntegration(t, "done", "acme")
	if _, _, err := e.reg.RetireIntegration(ctx, "done", "r", "bob"); err != nil {
		t.Fatal(err)
	}
	retireIntegration := func(id, reason, actor string) error {
		_, _, err := e.reg.RetireIntegration(ctx, id, reason, actor)
		return err
	}
	retireWorkload := func(id, reason, actor string) error {
		_, _, err := e.reg.RetireWorkload(ctx, id, reason, actor)
		return err
	}
	tests := []struct {
		name           string
		op             func(id, reason, actor string) error
		id, reason     string
		actor          string
		kind           fail.Kind
		field, mention string
	}{
		{"integration: missing id", retireIntegration, "", "r", "", fail.Invalid, "id", ""},
		{"integration: bad id", retireIntegration, "Orders", "r", "", fail.Invalid, "id", ""},
		{"integration: missing reason", retireIntegration, "orders", " ", "", fail.Invalid, "reason", ""},
		{"integration: actor too long", retireIntegration, "orders", "r", strings.Repeat("a", 257), fail.Invalid, "actor", ""},
		{"integration: unknown", retireIntegration, "nothing", "r", "", fail.NotFound, "", "does not exist"},
		{"integration: already retired", retireIntegration, "done", "r", "", fail.Precondition, "", "already retired"},
		{"integration: partner terminated", retireIntegration, "gone-api", "r", "", fail.Precondition, "", "terminated"},
		{"workload: missing id", retireWorkload, "", "r", "", fail.Invalid, "id", ""},
		{"workload: missing reason", retireWorkload, "bot", "", "", fail.Invalid, "reason", ""},
		{"workload: reason with control", retireWorkload, "bot", "a\nb", "", fail.Invalid, "reason", ""},
		{"workload: unknown", retireWorkload, "nobody", "r", "", fail.NotFound, "", "does not exist"},
		{"workload: partner terminated", retireWorkload, "gone-bot", "r", "", fail.Precondition, "", "terminated"},
	}
	head := e.rev.Head()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op(tc.id, tc.reason, tc.actor)
			checkErr(t, err, tc.kind, tc.field)
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
	if e.rev.Head() != head {
		t.Errorf("feed moved from %d to %d: a refused retirement was published", head, e.rev.Head())
	}
}
