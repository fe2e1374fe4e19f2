package revokersvc

import (
	"context"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/edge"
)

// dryRun answers a Revoke with dry_run set: what it would hit, appending nothing.
func (s *Service) dryRun(ctx context.Context, req *treatyv1.RevokeRequest) (*treatyv1.RevokeResponse, error) {
	if err := validateDryRun(req); err != nil {
		return nil, edge.Status(s.logger, err)
	}
	br, err := s.log.BlastRadius(ctx, req.GetTargetKind(), req.GetTargetId())
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.RevokeResponse{BlastRadius: blastRadiusProto(br)}, nil
}

// blastRadiusProto converts a blast radius, for Revoke's and RevokeAll's dry runs.
func blastRadiusProto(br revoker.BlastRadius) *treatyv1.BlastRadius {
	return &treatyv1.BlastRadius{
		LiveCredentials: br.LiveCredentials, CredentialIds: br.CredentialIDs,
		PartnerIds: br.PartnerIDs, IntegrationIds: br.IntegrationIDs, WorkloadIds: br.WorkloadIDs,
		InventoryUnavailable: br.InventoryUnavailable,
	}
}
