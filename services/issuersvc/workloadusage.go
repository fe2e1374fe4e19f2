package issuersvc

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

var _ registry.WorkloadUsage = credentialInventory{}

// GetWorkloadUsage implements treatyv1.IssuerServiceServer.
func (s *Service) GetWorkloadUsage(_ context.Context, req *treatyv1.GetWorkloadUsageRequest) (*treatyv1.GetWorkloadUsageResponse, error) {
	if err := validateGetWorkloadUsage(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	last, err := s.iss.WorkloadsLastUsed(req.GetWorkloadIds())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.GetWorkloadUsageResponse{Usages: make([]*treatyv1.WorkloadUsage, 0, len(last))}
	for _, id := range req.GetWorkloadIds() {
		if t, ok := last[id]; ok {
			out.Usages = append(out.Usages, &treatyv1.WorkloadUsage{WorkloadId: id, LastUseTime: timestamppb.New(t)})
			delete(last, id) // a repeated id is answered once
		}
	}
	return out, nil
}

// WorkloadsLastUsed implements registry.WorkloadUsage: it asks the issuer when each of ids last
// used a credential, at most issuer.MaxWorkloadUsageQuery per call.
func (inv credentialInventory) WorkloadsLastUsed(ctx context.Context, ids []string) (map[string]time.Time, error) {
	resp, err := inv.client.GetWorkloadUsage(ctx, &treatyv1.GetWorkloadUsageRequest{WorkloadIds: ids})
	if err != nil {
		return nil, edge.FromStatus(err)
	}
	out := make(map[string]time.Time, len(resp.GetUsages()))
	for _, u := range resp.GetUsages() {
		if u.GetLastUseTime().CheckValid() == nil {
			out[u.GetWorkloadId()] = u.GetLastUseTime().AsTime()
		}
	}
	return out, nil
}
