package revokersvc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func TestRevokeAll(t *testing.T) {
	e := start(t)
	onboard(t, e, "acme") // sequences 1 and 2
	ctx := context.Background()
	bad := []struct {
		name string
		req  *treatyv1.RevokeAllRequest
		want codes.Code
	}{
		{"without reason", &treatyv1.RevokeAllRequest{}, codes.InvalidArgument},
		{"past the head plus one", &treatyv1.RevokeAllRequest{BelowSequence: 4, Reason: "r"}, codes.InvalidArgument},
		{"dry run", &treatyv1.RevokeAllRequest{Reason: "r", DryRun: true}, codes.FailedPrecondition},
	}
	for _, tc := range bad {
		if _, err := e.client.RevokeAll(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme", Reason: "r", DryRun: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("revoke dry run: %v, want %v", err, codes.FailedPrecondition)
	}
	if e.log.Head() != 2 {
		t.Fatalf("a refused request appended: head %d", e.log.Head())
	}

	req := &treatyv1.RevokeAllRequest{Reason: "issuer key leaked", Actor: "alice", RequestId: "ra-1"}
	for i, want := range []*treatyv1.RevokeAllResponse{
		{Sequence: 3, BelowSequence: 3},
		{Sequence: 3, BelowSequence: 3, AlreadyApplied: true}, // the retry
	} {
		got, err := e.client.RevokeAll(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetSequence() != want.GetSequence() || got.GetBelowSequence() != want.GetBelowSequence() || got.GetAlreadyApplied() != want.GetAlreadyApplied() {
			t.Errorf("call %d: %v, want %v", i, got, want)
		}
	}
	snap, err := e.client.Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil || snap.GetState().GetGlobalWatermark() != 3 {
		t.Fatalf("snapshot carries watermark %d (%v), want 3", snap.GetState().GetGlobalWatermark(), err)
	}
}
