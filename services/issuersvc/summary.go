package issuersvc

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/services/edge"
)

// SummarizeCredentials implements treatyv1.IssuerServiceServer.
func (s *Service) SummarizeCredentials(_ context.Context, req *treatyv1.SummarizeCredentialsRequest) (*treatyv1.SummarizeCredentialsResponse, error) {
	if err := validateSummarizeCredentials(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	var since time.Time
	if req.SinceTime != nil {
		since = req.GetSinceTime().AsTime()
	}
	sum, err := s.iss.Summarize(since)
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.SummarizeCredentialsResponse{
		SinceTime: timestamppb.New(sum.Since), Truncated: sum.Truncated,
		Summaries: make([]*treatyv1.WorkloadCredentialSummary, len(sum.Workloads)),
	}
	for i, w := range sum.Workloads {
		out.Summaries[i] = summaryProto(w)
	}
	return out, nil
}

func summaryProto(w issuer.WorkloadSummary) *treatyv1.WorkloadCredentialSummary {
	return &treatyv1.WorkloadCredentialSummary{
		WorkloadId: w.WorkloadID, IntegrationId: w.IntegrationID, PartnerId: w.PartnerID,
		LiveCount: w.Live, LiveBearerCount: w.LiveBearer,
		OldestLiveIssueTime: optionalTime(w.OldestLiveIssued), OldestLiveCredentialId: w.OldestLiveID,
		LastIssueTime: optionalTime(w.LastIssued), LastSeenTime: optionalTime(w.LastSeen),
		ScopesSeen: w.ScopesSeen, AuthMethods: w.AuthMethods, BindingThumbprints: w.BindingThumbprints,
	}
}

// NewCredentialSource returns a posture.CredentialSource that reads the issuer's inventory
// aggregates over conn (IssuerService.SummarizeCredentials).
func NewCredentialSource(conn grpc.ClientConnInterface) posture.CredentialSource {
	return credentialSource{client: treatyv1.NewIssuerServiceClient(conn)}
}

type credentialSource struct {
	client treatyv1.IssuerServiceClient
}

// Summarize implements posture.CredentialSource.
func (c credentialSource) Summarize(ctx context.Context, since time.Time) (posture.Inventory, error) {
	req := &treatyv1.SummarizeCredentialsRequest{}
	if !since.IsZero() {
		req.SinceTime = timestamppb.New(since)
	}
	resp, err := c.client.SummarizeCredentials(ctx, req, grpc.MaxCallRecvMsgSize(maxSummaryBytes))
	if err != nil {
		return posture.Inventory{}, edge.FromStatus(err)
	}
	inv := posture.Inventory{Since: resp.GetSinceTime().AsTime(), Truncated: resp.GetTruncated(),
		Workloads: make([]posture.CredentialStats, len(resp.GetSummaries()))}
	for i, s := range resp.GetSummaries() {
		inv.Workloads[i] = posture.CredentialStats{
			WorkloadID: s.GetWorkloadId(), IntegrationID: s.GetIntegrationId(), PartnerID: s.GetPartnerId(),
			Live: s.GetLiveCount(), LiveBearer: s.GetLiveBearerCount(),
			OldestLiveIssued: timeOrZero(s.GetOldestLiveIssueTime()), OldestLiveID: s.GetOldestLiveCredentialId(),
			LastIssued: timeOrZero(s.GetLastIssueTime()), LastSeen: timeOrZero(s.GetLastSeenTime()),
			ScopesSeen: s.GetScopesSeen(), AuthMethods: s.GetAuthMethods(), BindingThumbprints: s.GetBindingThumbprints(),
		}
	}
	return inv, nil
}

// maxSummaryBytes lets a summary of many workloads through (about 200 bytes each): the default
// 4 MiB limit would stop at some 20,000 workloads.
const maxSummaryBytes = 64 << 20

func timeOrZero(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
