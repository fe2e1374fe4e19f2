package registrysvc_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func TestRetireBadRequestsGetExactCodes(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	_, keyPEM := publicKey(t)
	f.mustWorkload(t, "bot", "orders", keyPEM)
	f.mustIntegration(t, "done", "acme")
	if _, err := f.client.RetireIntegration(ctx, &treatyv1.RetireIntegrationRequest{Id: "done", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	f.mustPartner(t, "gone")
	f.mustIntegration(t, "gone-orders", "gone")
	if _, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "gone", Reason: "contract ended"}); err != nil {
		t.Fatal(err)
	}
	integration := func(req *treatyv1.RetireIntegrationRequest) func() error {
		return func() error { _, err := f.client.RetireIntegration(ctx, req); return err }
	}
	workload := func(req *treatyv1.RetireWorkloadRequest) func() error {
		return func() error { _, err := f.client.RetireWorkload(ctx, req); return err }
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"integration id missing", integration(&treatyv1.RetireIntegrationRequest{Reason: "r"}), codes.InvalidArgument, "id"},
		{"integration id bad", integration(&treatyv1.RetireIntegrationRequest{Id: "Orders", Reason: "r"}), codes.InvalidArgument, "id"},
		{"integration reason missing", integration(&treatyv1.RetireIntegrationRequest{Id: "orders"}), codes.InvalidArgument, "reason"},
		{"integration reason too long", integration(&treatyv1.RetireIntegrationRequest{Id: "orders", Reason: strings.Repeat("r", 1025)}), codes.InvalidArgument, "reason"},
		{"integration actor too long", integration(&treatyv1.RetireIntegrationRequest{Id: "orders", Reason: "r", Actor: strings.Repeat("a", 257)}), codes.InvalidArgument, "actor"},
		{"integration unknown", integration(&treatyv1.RetireIntegrationRequest{Id: "nothing", Reason: "r"}), codes.NotFound, ""},
		{"integration already retired", integration(&treatyv1.RetireIntegrationRequest{Id: "done", Reason: "r"}), codes.FailedPrecondition, ""},
		{"integration partner terminated", integration(&treatyv1.RetireIntegrationRequest{Id: "gone-orders", Reason: "r"}), codes.FailedPrecondition, ""},
		{"workload id missing", workload(&treatyv1.RetireWorkloadRequest{Reason: "r"}), codes.InvalidArgument, "id"},
		{"workload reason blank", workload(&treatyv1.RetireWorkloadRequest{Id: "bot", Reason: "  "}), codes.InvalidArgument, "reason"},
		{"workload unknown", workload(&treatyv1.RetireWorkloadRequest{Id: "nobody", Reason: "r"}), codes.NotFound, ""},
	}
	head := f.rev.Head()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkStatus(t, tc.call(), tc.code, tc.field) })
	}
	if f.rev.Head() != head {
		t.Errorf("refused requests published events: head %d, want %d", f.rev.Head(), head)
	}
}

func TestRetireAnswersWithTheBlocksSequence(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	f.mustIntegration(t, "billing", "acme")
	_, k1 := publicKey(t)
	_, k2 := publicKey(t)
	f.mustWorkload(t, "bot", "orders", k1)
	f.mustWorkload(t, "biller", "billing", k2)

	w, err := f.client.RetireWorkload(ctx, &treatyv1.RetireWorkloadRequest{Id: "biller", Reason: "replaced", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := f.rev.State().Workload("biller")
	if w.GetWorkload().GetState() != treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED || fw.Block == nil || !fw.Block.Permanent ||
		fw.Block.Sequence != w.GetSequence() {
		t.Errorf("RetireWorkload = %v; revoker's block %+v", w, fw.Block)
	}

	i, err := f.client.RetireIntegration(ctx, &treatyv1.RetireIntegrationRequest{Id: "orders", Reason: "ended", Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.rev.State().Integration("orders")
	if i.GetIntegration().GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED || fi.Block == nil || !fi.Block.Permanent ||
		fi.Block.Sequence != i.GetSequence() || i.GetSequence() != f.rev.Head() {
		t.Errorf("RetireIntegration = %v; revoker's block %+v at head %d", i, fi.Block, f.rev.Head())
	}
	got, err := f.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "bot"})
	if err != nil || got.GetWorkload().GetState() != treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED {
		t.Errorf("the integration's workload after retirement: %v, %v", got, err)
	}
}
