package issuersvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/issuersvc"
)

func TestCountLiveCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.issue(e.request()).GetCredential()
	e.issue(e.request())
	e.issue(e.requestAs(sibling))

	resp, err := e.client.CountLiveCredentials(ctx, &treatyv1.CountLiveCredentialsRequest{PartnerId: partner, MaxIds: 2})
	if err != nil || resp.GetCount() != 3 || len(resp.GetCredentialIds()) != 2 {
		t.Fatalf("CountLiveCredentials(partner) = %v, %v; want 3 with 2 ids", resp, err)
	}
	resp, err = e.client.CountLiveCredentials(ctx, &treatyv1.CountLiveCredentialsRequest{WorkloadId: workload, Kid: first.GetKid()})
	if err != nil || resp.GetCount() != 2 || len(resp.GetCredentialIds()) != 2 {
		t.Fatalf("CountLiveCredentials(workload, kid) = %v, %v; want 2", resp, err)
	}

	// The revoker's view of it: the same answer through revoker.Inventory.
	n, ids, err := issuersvc.NewInventory(e.conn).LiveCredentials(ctx, revoker.InventoryQuery{
		PartnerID: partner, IntegrationID: integration, MaxIDs: 500,
	})
	if err != nil || n != 3 || len(ids) != 3 {
		t.Fatalf("LiveCredentials = %d %v, %v; want 3 with 3 ids", n, ids, err)
	}
	n, ids, err = issuersvc.NewInventory(e.conn).LiveCredentials(ctx, revoker.InventoryQuery{PartnerID: partner, WorkloadIDs: []string{sibling}})
	if err != nil || n != 1 || len(ids) != 1 {
		t.Fatalf("LiveCredentials(sibling) = %d %v, %v; want 1", n, ids, err)
	}
	n, ids, err = issuersvc.NewInventory(e.conn).LiveCredentials(ctx, revoker.InventoryQuery{CredentialID: first.GetId()})
	if err != nil || n != 1 || len(ids) != 1 || ids[0] != first.GetId() {
		t.Fatalf("LiveCredentials(jti) = %d %v, %v", n, ids, err)
	}

	tests := []struct {
		name  string
		req   *treatyv1.CountLiveCredentialsRequest
		field string
	}{
		{"nothing named", &treatyv1.CountLiveCredentialsRequest{}, "partner_id"},
		{"only a watermark", &treatyv1.CountLiveCredentialsRequest{MinSequence: 4}, "partner_id"},
		{"bad partner", &treatyv1.CountLiveCredentialsRequest{PartnerId: "Acme"}, "partner_id"},
		{"bad integration", &treatyv1.CountLiveCredentialsRequest{IntegrationId: "a b"}, "integration_id"},
		{"bad workload", &treatyv1.CountLiveCredentialsRequest{WorkloadId: "-"}, "workload_id"},
		{"bad credential", &treatyv1.CountLiveCredentialsRequest{CredentialId: strings.Repeat("j", 300)}, "credential_id"},
		{"bad kid", &treatyv1.CountLiveCredentialsRequest{Kid: "k\x00"}, "kid"},
		{"bad listed workload", &treatyv1.CountLiveCredentialsRequest{WorkloadIds: []string{workload, "Bot"}}, "workload_ids"},
		{"too many listed workloads", &treatyv1.CountLiveCredentialsRequest{WorkloadIds: make([]string, 10001)}, "workload_ids"},
		{"negative max ids", &treatyv1.CountLiveCredentialsRequest{PartnerId: partner, MaxIds: -1}, "max_ids"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.CountLiveCredentials(ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.field)
		})
	}
}

func TestInventoryUnreachable(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := issuersvc.NewInventory(conn).LiveCredentials(ctx, revoker.InventoryQuery{PartnerID: partner}); err == nil {
		t.Fatal("unreachable issuer: no error")
	}
}
