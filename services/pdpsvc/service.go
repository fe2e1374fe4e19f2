// Package pdpsvc is the gRPC adapter of the policy decision point: DecisionService over package
// pdp, and the issuer's Authorizer client over DecisionService.
package pdpsvc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the Service.
type Config struct {
	// PDP makes the decisions; required. The server assembly runs its Run loop and owns its store.
	PDP *pdp.PDP
	// Logger receives denies for the audit trail and internal errors (never tokens); defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.DecisionServiceServer.
type Service struct {
	treatyv1.UnimplementedDecisionServiceServer
	pdp *pdp.PDP
	log *slog.Logger
}

var _ treatyv1.DecisionServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{pdp: cfg.PDP, log: cfg.Logger.With("service", "pdp")}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterDecisionServiceServer(r, s) }

// Ready reports whether the PDP is caught up with the feed and not stale, for health checking:
// the server reports SERVING for DecisionService only while it is true.
func (s *Service) Ready() bool { return s.pdp.Ready() }

// ReadyChanged returns a channel closed at the next change of readiness (or of the sync status
// behind it). Take it before calling Ready, so that no change in between is missed.
func (s *Service) ReadyChanged() <-chan struct{} { return s.pdp.StatusChanged() }

// Check decides whether a credential may perform an action on a resource. A deny is a normal
// response; errors are for malformed requests and an unmet min_sequence (UNAVAILABLE).
func (s *Service) Check(ctx context.Context, req *treatyv1.CheckRequest) (*treatyv1.CheckResponse, error) {
	if err := validateCheck(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	d, err := s.pdp.Check(ctx, checkRequest(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	if !d.Allow {
		s.audit(ctx, "check denied", d, "action", req.GetAction(), "resource", req.GetResource(), "subject", d.Subject, "jti", d.TokenID)
	}
	return checkResponse(d), nil
}

// CheckIssuance decides whether the issuer may mint a credential for a workload now.
func (s *Service) CheckIssuance(ctx context.Context, req *treatyv1.CheckIssuanceRequest) (*treatyv1.CheckIssuanceResponse, error) {
	if err := validateIssuance(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	d, err := s.pdp.CheckIssuance(ctx, issuanceRequest(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	if !d.Allow {
		s.audit(ctx, "issuance denied", d, "workload", req.GetWorkloadId(), "scopes", req.GetScopes(), "audience", req.GetAudience(), "kid", req.GetKid())
	}
	return issuanceResponse(d), nil
}

// audit logs a deny. Denies because the PDP is not ready say nothing about the caller and come in
// floods during an outage, so they are logged at debug level; the status change is logged once.
func (s *Service) audit(ctx context.Context, msg string, d pdp.Decision, attrs ...any) {
	level := slog.LevelInfo
	if r := d.Reasons[0]; r == pdp.ReasonSyncing || r == pdp.ReasonStale {
		level = slog.LevelDebug
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, "reason", d.Reasons[0], "decision_id", d.DecisionID, "sequence", d.Sequence)
	s.log.Log(ctx, level, msg, attrs...)
}
