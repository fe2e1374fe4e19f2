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
	}
	for _, tc := range bad {
		if _, err := e.client.RevokeAll(ctx, tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Dry runs answer what they would hit and append nothing.
	dry, err := e.client.RevokeAll(ctx, &treatyv1.RevokeAllRequest{DryRun: true})
	if err != nil || dry.GetBelowSequence() != 3 || dry.GetSequence() != 0 || dry.GetBlastRadius() == nil {
		t.Errorf("revoke all dry run = %v, %v; want below 3, no sequence, a blast radius", dry, err)
	}
	if _, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme", Reason: "r", DryRun: true}); err != nil {
		t.Errorf("revoke dry run: %v", err)
	}
	if e.log.Head() != 2 {
		t.Fatalf("a refused request or a dry run appended: head %d", e.log.Head())
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
