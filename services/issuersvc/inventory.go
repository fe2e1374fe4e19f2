package issuersvc

import (
	"context"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/registry"
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

// NewCredentialInventory returns a registry.CredentialInventory over the issuer's inventory at
// conn, for the registry's offboarding workflow: it lists a partner's live credentials and counts
// them once the issuer has applied the feed up to a sequence. It also implements
// registry.WorkloadUsage, so the registry fills workloads' last use from the issuer.
func NewCredentialInventory(conn grpc.ClientConnInterface) registry.CredentialInventory {
	return credentialInventory{client: treatyv1.NewIssuerServiceClient(conn)}
}

type credentialInventory struct {
	client treatyv1.IssuerServiceClient
}

// LiveCredentials implements registry.CredentialInventory.
func (inv credentialInventory) LiveCredentials(ctx context.Context, partnerID, pageToken string) ([]string, string, error) {
	resp, err := inv.client.ListCredentials(ctx, &treatyv1.ListCredentialsRequest{
		PartnerId: partnerID, LiveOnly: true, PageSize: issuer.MaxPageSize, PageToken: pageToken,
	})
	if err != nil {
		return nil, "", edge.FromStatus(err)
	}
	ids := make([]string, len(resp.GetCredentials()))
	for i, c := range resp.GetCredentials() {
		ids[i] = c.GetId()
	}
	return ids, resp.GetNextPageToken(), nil
}

// CountLive implements registry.CredentialInventory.
func (inv credentialInventory) CountLive(ctx context.Context, partnerID string, appliedSeq uint64) (uint64, uint64, error) {
	resp, err := inv.client.CountLiveCredentials(ctx, &treatyv1.CountLiveCredentialsRequest{
		PartnerId: partnerID, AppliedSequence: appliedSeq, MaxIds: 1,
	})
	if err != nil {
		return 0, 0, edge.FromStatus(err)
	}
	return resp.GetCount(), resp.GetAppliedSequence(), nil
}
