package revokersvc

import (
	"context"

	"github.com/treaty-dev/treaty/fail"
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

// revokeAllDryRun answers a RevokeAll with dry_run set: how many live credentials it would kill.
func (s *Service) revokeAllDryRun(ctx context.Context, below uint64) (*treatyv1.RevokeAllResponse, error) {
	head := s.log.Head()
	switch {
	case below == 0:
		below = head + 1
	case below > head+1:
		return nil, edge.Status(s.logger, fail.Invalidf("below_sequence",
			"below_sequence %d is past the head plus one (%d): no credential can have been issued there", below, head+1))
	}
	br, err := s.log.BlastRadiusBelow(ctx, below)
	if err != nil {
		return nil, edge.Status(s.logger, err)
	}
	return &treatyv1.RevokeAllResponse{BelowSequence: below, BlastRadius: blastRadiusProto(br)}, nil
}

// blastRadiusProto converts a blast radius, for Revoke's and RevokeAll's dry runs.
func blastRadiusProto(br revoker.BlastRadius) *treatyv1.BlastRadius {
	return &treatyv1.BlastRadius{
		LiveCredentials: br.LiveCredentials, CredentialIds: br.CredentialIDs,
		PartnerIds: br.PartnerIDs, IntegrationIds: br.IntegrationIDs, WorkloadIds: br.WorkloadIDs,
		InventoryUnavailable: br.InventoryUnavailable,
	}
}
