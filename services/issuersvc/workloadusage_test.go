package issuersvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/issuersvc"
)

// A PDP's usage report moves the workload's last use forward; GetWorkloadUsage answers it, and
// the registry's client adapter passes it on.
func TestGetWorkloadUsage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.issue(e.request()).GetCredential()
	seen := time.Now().Add(-time.Minute).Truncate(time.Second)
	sink := issuersvc.NewUsageSink(e.conn)
	if err := sink.ReportUsage(ctx, []pdp.Usage{{CredentialID: c.GetId(), LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	// An older report leaves the mark where it is.
	if err := sink.ReportUsage(ctx, []pdp.Usage{{CredentialID: c.GetId(), LastSeen: seen.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.GetWorkloadUsage(ctx, &treatyv1.GetWorkloadUsageRequest{WorkloadIds: []string{sibling, workload, workload}})
	if err != nil {
		t.Fatal(err)
	}
	want := &treatyv1.GetWorkloadUsageResponse{Usages: []*treatyv1.WorkloadUsage{{WorkloadId: workload, LastUseTime: timestamppb.New(seen)}}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Fatalf("GetWorkloadUsage (-want +got):\n%s", diff)
	}

	usage, ok := issuersvc.NewCredentialInventory(e.conn).(registry.WorkloadUsage)
	if !ok {
		t.Fatal("the registry's inventory adapter cannot tell workloads' last use")
	}
	last, err := usage.WorkloadsLastUsed(ctx, []string{workload, sibling})
	if err != nil || len(last) != 1 || !last[workload].Equal(seen) {
		t.Fatalf("WorkloadsLastUsed = %v, %v; want %s at %v only", last, err, workload, seen)
	}

	many := make([]string, issuer.MaxWorkloadUsageQuery+1)
	for i := range many {
		many[i] = workload
	}
	for _, tc := range []struct {
		name string
		ids  []string
	}{
		{"too many ids", many},
		{"empty id", []string{workload, ""}},
		{"id with a space", []string{"a b"}},
		{"upper-case id", []string{"Acme"}},
		{"id too long", []string{strings.Repeat("a", 200)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.GetWorkloadUsage(ctx, &treatyv1.GetWorkloadUsageRequest{WorkloadIds: tc.ids})
			wantCode(t, err, codes.InvalidArgument, "workload_ids")
		})
	}
	if _, err := usage.WorkloadsLastUsed(ctx, many); err == nil {
		t.Error("the adapter passed on an oversized request without error")
	}
}
