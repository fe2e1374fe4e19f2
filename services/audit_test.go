package services

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestAuditServiceRunsWithTheRegistry checks the wiring: the audit service answers where the
// registry runs, and a following export does not hold up shutdown.
func TestAuditServiceRunsWithTheRegistry(t *testing.T) {
	srv, conn := serve(t, Config{Services: []string{Registry, Revoker}})
	client := treatyv1.NewAuditServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{})
	if err != nil || resp.GetBroken() != nil || resp.GetRecords() != 0 || resp.GetHeadHash() != strings.Repeat("0", 64) {
		t.Fatalf("VerifyAudit of a new registry = %v, %v", resp, err)
	}
	stream, err := client.ExportAudit(ctx, &treatyv1.ExportAuditRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{}); err != nil {
		t.Fatal(err) // the export stream is open by now
	}
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("following export at shutdown: %v, want UNAVAILABLE", err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waited for the following export")
	}
}
