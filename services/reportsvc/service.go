// Package reportsvc is the gRPC adapter of posture findings and reports (ReportService): it
// gathers the registry's entities, the audit trail and the issuer's inventory (Gatherer), serves
// the findings the posture.Runner keeps, and builds the inventory and compliance reports.
package reportsvc

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures a Service.
type Config struct {
	// Runner computes and keeps the posture findings; its Gather should be Gatherer.Gather.
	// Required.
	Runner *posture.Runner
	// Gatherer reads what the reports draw on. Required.
	Gatherer *Gatherer
	// Revocations reads the kill switch's counts for the compliance report
	// (RevocationsFromRevoker); nil leaves them unknown.
	Revocations func(context.Context) (Revocations, error)
	// MaxCredentialTTL is the deployment's maximum credential lifetime, shown as evidence.
	MaxCredentialTTL time.Duration
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.ReportServiceServer.
type Service struct {
	treatyv1.UnimplementedReportServiceServer
	cfg Config
	log *slog.Logger
}

var _ treatyv1.ReportServiceServer = (*Service)(nil)

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger}
}

// Register registers the service with r.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterReportServiceServer(r, s) }

// GetPosture implements treatyv1.ReportServiceServer.
func (s *Service) GetPosture(ctx context.Context, req *treatyv1.GetPostureRequest) (*treatyv1.GetPostureResponse, error) {
	if err := validateGetPosture(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	res, ok := s.cfg.Runner.Latest()
	if req.GetRefresh() || !ok {
		var err error
		if res, err = s.cfg.Runner.Compute(ctx); err != nil {
			return nil, edge.Status(s.log, unavailable(err))
		}
	}
	floor := minSeverity(req.GetMinSeverity())
	out := &treatyv1.GetPostureResponse{ComputeTime: timestamppb.New(res.Time), Notes: res.Notes}
	for _, f := range res.Findings {
		if f.Severity < floor || (req.GetPartnerId() != "" && f.Subject.PartnerID != req.GetPartnerId()) {
			continue
		}
		out.Findings = append(out.Findings, FindingProto(f))
	}
	return out, nil
}

// GetInventoryReport implements treatyv1.ReportServiceServer.
func (s *Service) GetInventoryReport(ctx context.Context, req *treatyv1.GetInventoryReportRequest) (*treatyv1.GetInventoryReportResponse, error) {
	if err := validateGetInventoryReport(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	snap, err := s.cfg.Gatherer.Snapshot(ctx)
	if err != nil {
		return nil, edge.Status(s.log, unavailable(err))
	}
	only := req.GetPartnerId()
	if only != "" && !slices.ContainsFunc(snap.Partners, func(p registry.Partner) bool { return p.ID == only }) {
		return nil, edge.Status(s.log, fail.NotFoundf("partner %q does not exist", only))
	}
	type usage struct {
		live uint64
		seen time.Time
	}
	byPartner, byIntegration := map[string]*usage{}, map[string]*usage{}
	add := func(m map[string]*usage, id string, live uint64, seen time.Time) {
		u := m[id]
		if u == nil {
			u = &usage{}
			m[id] = u
		}
		u.live += live
		if seen.After(u.seen) {
			u.seen = seen
		}
	}
	if snap.Inventory != nil {
		for _, w := range snap.Inventory.Workloads {
			add(byPartner, w.PartnerID, w.Live, w.LastSeen)
			add(byIntegration, w.IntegrationID, w.Live, w.LastSeen)
		}
	}
	integrations, workloads := map[string]uint32{}, map[string]uint32{}
	for _, it := range snap.Integrations {
		integrations[it.PartnerID]++
	}
	byIntegWorkloads := map[string]uint32{}
	for _, w := range snap.Workloads {
		workloads[w.PartnerID]++
		byIntegWorkloads[w.IntegrationID]++
	}
	out := &treatyv1.GetInventoryReportResponse{GenerateTime: timestamppb.New(snap.Now), InventoryUnavailable: snap.Inventory == nil}
	for _, p := range snap.Partners {
		if only != "" && p.ID != only {
			continue
		}
		row := partnerRow(p)
		row.IntegrationCount, row.WorkloadCount = integrations[p.ID], workloads[p.ID]
		if u := byPartner[p.ID]; u != nil {
			row.LiveCredentials, row.LastSeenTime = u.live, optionalTime(u.seen)
		}
		out.Partners = append(out.Partners, row)
	}
	for _, it := range snap.Integrations {
		if only != "" && it.PartnerID != only {
			continue
		}
		row := integrationRow(it)
		row.WorkloadCount = byIntegWorkloads[it.ID]
		if u := byIntegration[it.ID]; u != nil {
			row.LiveCredentials, row.LastSeenTime = u.live, optionalTime(u.seen)
		}
		out.Integrations = append(out.Integrations, row)
	}
	return out, nil
}

// GetComplianceReport implements treatyv1.ReportServiceServer.
func (s *Service) GetComplianceReport(ctx context.Context, _ *treatyv1.GetComplianceReportRequest) (*treatyv1.GetComplianceReportResponse, error) {
	snap, err := s.cfg.Gatherer.Snapshot(ctx)
	if err != nil {
		return nil, edge.Status(s.log, unavailable(err))
	}
	// The findings of this very snapshot, so that counts and findings agree.
	res := posture.Evaluate(snap.Input(), s.cfg.Runner.Rules())
	var rev *Revocations
	if s.cfg.Revocations != nil {
		r, err := s.cfg.Revocations(ctx)
		if err != nil {
			s.log.Warn("reportsvc: the revoker's state could not be read for the compliance report", "err", err)
		} else {
			rev = &r
		}
	}
	return report(snap, res, rev, s.cfg.MaxCredentialTTL), nil
}

// unavailable keeps a domain error's kind, and reports anything else (a store failure, a
// canceled context) as the service being unable to answer now.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || fail.KindOf(err) == fail.Internal {
		return fail.Unavailablef(err, "the report could not be computed now; try again")
	}
	return err
}
