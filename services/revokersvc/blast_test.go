package revokersvc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestDryRunOverGRPC asks a revoker served on loopback for a dry run; it counts credentials in a
// real issuer's inventory, served on loopback too, through issuersvc.NewInventory.
func TestDryRunOverGRPC(t *testing.T) {
	w := issuertest.Start(t, issuertest.Config{})
	w.CreatePartner("acme", time.Now().Add(30*24*time.Hour))
	w.CreateIntegration(issuertest.Integration{ID: "acme-api", PartnerID: "acme", Scopes: []string{"read"}, Audiences: []string{"api"}, MaxTTL: time.Hour})
	bot := w.CreateWorkload("acme-bot", "acme-api")
	m := w.StartIssuer()
	c1, c2 := m.Mint(bot, "read", "api", 5*time.Minute), m.Mint(bot, "read", "api", 10*time.Minute)
	issuerConn := grpctest.Serve(t, issuersvc.New(issuersvc.Config{Issuer: m.Issuer, Logger: issuertest.Quiet}).Register)

	// A revoker with the world's events, asking the issuer over gRPC.
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Inventory: issuersvc.NewInventory(issuerConn), Logger: issuertest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	var entries []*treatyv1.PublishEntry
	for _, ev := range w.Events() {
		entries = append(entries, &treatyv1.PublishEntry{RequestId: fmt.Sprint("mirror-", ev.GetSequence()), Event: ev})
	}
	if _, err := log.Publish(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Logger: issuertest.Quiet})
	t.Cleanup(svc.Close)
	client := treatyv1.NewRevocationServiceClient(grpctest.Serve(t, svc.Register))
	ctx := context.Background()
	head := log.Head()

	// No reason needed: nothing is recorded.
	resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := &treatyv1.RevokeResponse{BlastRadius: &treatyv1.BlastRadius{
		LiveCredentials: 2, CredentialIds: []string{c2.ID, c1.ID},
		PartnerIds: []string{"acme"}, IntegrationIds: []string{"acme-api"}, WorkloadIds: []string{"acme-bot"},
	}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if log.Head() != head {
		t.Fatalf("a dry run appended: head %d, want %d", log.Head(), head)
	}

	tests := []struct {
		name  string
		req   *treatyv1.RevokeRequest
		code  codes.Code
		field string
	}{
		{"no kind", &treatyv1.RevokeRequest{TargetId: "acme", DryRun: true}, codes.InvalidArgument, "target_kind"},
		{"bad id", &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_WORKLOAD, TargetId: "Acme Bot", DryRun: true}, codes.InvalidArgument, "target_id"},
		{"unknown partner", &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "globex", DryRun: true}, codes.NotFound, ""},
		{"unknown key", &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, TargetId: "no-such-kid", DryRun: true}, codes.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Revoke(ctx, tc.req)
			wantStatus(t, err, tc.code, tc.field)
		})
	}

	// With the issuer gone, the dry run still answers, and says the inventory was unavailable.
	issuerConn.Close()
	resp, err = client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_WORKLOAD, TargetId: "acme-bot", DryRun: true})
	if err != nil || !resp.GetBlastRadius().GetInventoryUnavailable() || len(resp.GetBlastRadius().GetWorkloadIds()) != 1 {
		t.Errorf("dry run without the issuer: %v, %v", resp, err)
	}
	if log.Head() != head {
		t.Fatalf("a dry run appended: head %d, want %d", log.Head(), head)
	}
}

// wantStatus fails the test unless err is a status with code and, for INVALID_ARGUMENT, a field
// violation naming field.
func wantStatus(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != code {
		t.Fatalf("got %v, want status %s", err, code)
	}
	if field == "" {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() == field {
			return
		}
	}
	t.Fatalf("status %q names no field %q", st.Message(), field)
}
