package issuersvc

import (
	"context"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/edge"
)

// NewInventory returns a revoker.Inventory that counts live credentials in the issuer's inventory
// over conn, so that a revocation's dry run can say what it would kill.
func NewInventory(conn grpc.ClientConnInterface) revoker.Inventory {
	return inventory{client: treatyv1.NewIssuerServiceClient(conn)}
}

type inventory struct {
	client treatyv1.IssuerServiceClient
}

// LiveCredentials implements revoker.Inventory.
func (inv inventory) LiveCredentials(ctx context.Context, q revoker.InventoryQuery) (uint64, []string, error) {
	resp, err := inv.client.CountLiveCredentials(ctx, &treatyv1.CountLiveCredentialsRequest{
		PartnerId: q.PartnerID, IntegrationId: q.IntegrationID, WorkloadId: q.WorkloadID,
		WorkloadIds: q.WorkloadIDs, CredentialId: q.CredentialID, Kid: q.Kid,
		BelowSequence: q.BelowSequence, MinSequence: q.MinSequence, MaxIds: int32(max(0, min(q.MaxIDs, revoker.MaxBlastIDs))),
	})
	if err != nil {
		return 0, nil, edge.FromStatus(err)
	}
	return resp.GetCount(), resp.GetCredentialIds(), nil
}
