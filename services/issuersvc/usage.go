package issuersvc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/edge"
)

// NewUsageSink returns a pdp.UsageSink that reports the PDP's usage batches to the issuer's
// inventory over conn (IssuerService.ReportUsage).
func NewUsageSink(conn grpc.ClientConnInterface) pdp.UsageSink {
	return usageSink{client: treatyv1.NewIssuerServiceClient(conn)}
}

type usageSink struct {
	client treatyv1.IssuerServiceClient
}

// ReportUsage implements pdp.UsageSink.
func (s usageSink) ReportUsage(ctx context.Context, usages []pdp.Usage) error {
	req := &treatyv1.ReportUsageRequest{Usages: make([]*treatyv1.CredentialUsage, len(usages))}
	for i, u := range usages {
		req.Usages[i] = &treatyv1.CredentialUsage{CredentialId: u.CredentialID, LastSeenTime: timestamppb.New(u.LastSeen)}
	}
	if _, err := s.client.ReportUsage(ctx, req); err != nil {
		return edge.FromStatus(err)
	}
	return nil
}
