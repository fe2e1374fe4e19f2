package issuersvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/issuersvc"
)

func TestSummarizeCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.issue(e.request()).GetCredential()
	e.issue(e.request())
	e.issue(e.requestAs(sibling))
	if _, err := e.client.ReportUsage(ctx, &treatyv1.ReportUsageRequest{Usages: []*treatyv1.CredentialUsage{
		{CredentialId: first.GetId(), LastSeenTime: timestamppb.New(time.Now().Add(-time.Second))},
	}}); err != nil {
		t.Fatal(err)
	}

	resp, err := e.client.SummarizeCredentials(ctx, &treatyv1.SummarizeCredentialsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetSummaries()); n != 2 {
		t.Fatalf("%d summaries, want 2: %v", n, resp)
	}
	w := resp.GetSummaries()[1]
	if w.GetWorkloadId() != workload || w.GetLiveCount() != 2 || w.GetLastSeenTime() == nil || len(w.GetScopesSeen()) == 0 {
		t.Errorf("workload summary %v", w)
	}

	// The posture view of it, through the client adapter.
	inv, err := issuersvc.NewCredentialSource(e.conn).Summarize(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Workloads) != 2 || inv.Workloads[0].WorkloadID != sibling || inv.Workloads[0].Live != 1 || !inv.Workloads[0].LastSeen.IsZero() ||
		inv.Workloads[1].LastSeen.IsZero() || inv.Workloads[1].OldestLiveID == "" || inv.Truncated {
		t.Errorf("inventory %+v", inv)
	}

	for name, req := range map[string]*treatyv1.SummarizeCredentialsRequest{
		"invalid time": {SinceTime: &timestamppb.Timestamp{Seconds: -1 << 62}},
		"future":       {SinceTime: timestamppb.New(time.Now().Add(time.Hour))},
	} {
		_, err := e.client.SummarizeCredentials(ctx, req)
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "since_time") {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming since_time", name, err)
		}
	}
}
