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
	"github.com/treaty-dev/treaty/services/requestid"
)

// Config configures the Service.
type Config struct {
	// PDP makes the decisions; required. The server assembly runs its Run loop and owns its store.
	PDP *pdp.PDP
	// Trusted reports whether the caller of a request may send already-verified claims or ask
	// about a workload without a credential (the server assembly decides, from the peer's address
	// or role). It is asked only for such requests. Nil trusts nobody: those requests are denied
	// (claims_not_trusted, subject_not_trusted).
	Trusted func(ctx context.Context) bool
	// Logger receives denies for the audit trail and internal errors (never tokens); defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.DecisionServiceServer.
type Service struct {
	treatyv1.UnimplementedDecisionServiceServer
	pdp     *pdp.PDP
	trusted func(ctx context.Context) bool
	log     *slog.Logger
}

var _ treatyv1.DecisionServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{pdp: cfg.PDP, trusted: cfg.Trusted, log: cfg.Logger.With("service", "pdp")}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterDecisionServiceServer(r, s) }

// Ready reports whether the PDP is caught up with the feed and not stale, for health checking:
// the server reports SERVING for DecisionService only while it is true.
func (s *Service) Ready() bool { return s.pdp.Ready() }

// ReadyChanged returns a channel closed at the next change of readiness (or of the sync status
// behind it). Take it before calling Ready, so that no change in between is missed.
func (s *Service) ReadyChanged() <-chan struct{} { return s.pdp.StatusChanged() }

// Check decides whether a subject may perform an action on a resource. A deny is a normal
// response; errors are for malformed requests and an unmet min_sequence (UNAVAILABLE). The
// handler is on every request of every protected API, and is measured against an empty call:
// it converts, decides and answers, and does nothing else on an allow.
func (s *Service) Check(ctx context.Context, req *treatyv1.CheckRequest) (*treatyv1.CheckResponse, error) {
	if err := validateCheck("", req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	d, err := s.pdp.Check(ctx, checkRequest(req, s.trust(ctx, req), requestID(ctx)))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	if !d.Allow {
		s.auditCheck(ctx, req, &d)
	}
	return checkResponse(&d), nil
}

// CheckBatch decides several checks on one state, with AuthZEN's evaluation semantics.
func (s *Service) CheckBatch(ctx context.Context, req *treatyv1.CheckBatchRequest) (*treatyv1.CheckBatchResponse, error) {
	if err := validateBatch(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	id := requestID(ctx)
	trusted, asked := false, false
	checks := make([]pdp.CheckRequest, len(req.GetChecks()))
	for i, c := range req.GetChecks() {
		if !asked && needsTrust(c) {
			trusted, asked = s.trust(ctx, c), true
		}
		checks[i] = checkRequest(c, trusted, id)
	}
	ds, err := s.pdp.CheckBatch(ctx, checks, batchSemantics(req.GetSemantics()), req.GetMinSequence())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.CheckBatchResponse{Decisions: make([]*treatyv1.CheckResponse, len(ds))}
	for i := range ds {
		if !ds[i].Allow {
			s.auditCheck(ctx, req.GetChecks()[i], &ds[i])
		}
		out.Decisions[i] = checkResponse(&ds[i])
	}
	return out, nil
}

// needsTrust reports whether a check's subject is one only trusted callers may send.
func needsTrust(req *treatyv1.CheckRequest) bool {
	return req.GetClaims() != nil || req.GetWorkloadId() != ""
}

// trust asks the Trusted hook, only for the subjects that need it, so that a token check never
// pays for it.
func (s *Service) trust(ctx context.Context, req *treatyv1.CheckRequest) bool {
	return needsTrust(req) && s.trusted != nil && s.trusted(ctx)
}

// requestID returns the call's request id for the decision log: the one the server's requestid
// interceptor gave the call (the caller's x-request-id when sane, else one it made up and sent back
// in the response's x-request-id header), so that every entry can be found with the server's log
// lines and the caller's own. Reading it from the context is one lookup; the caller's metadata
// would be scanned key by key, case-insensitively, on every call that sends none.
func requestID(ctx context.Context) string {
	id, _ := requestid.FromContext(ctx)
	return id
}

func (s *Service) auditCheck(ctx context.Context, req *treatyv1.CheckRequest, d *pdp.Decision) {
	s.audit(ctx, "check denied", d, "action", req.GetAction(), "resource", req.GetResource(), "subject", d.Subject, "jti", d.TokenID)
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
		s.audit(ctx, "issuance denied", &d, "workload", req.GetWorkloadId(), "scopes", req.GetScopes(), "audience", req.GetAudience(), "kid", req.GetKid())
	}
	return issuanceResponse(d), nil
}

// audit logs a deny. Denies because the PDP is not ready say nothing about the caller and come in
// floods during an outage, so they are logged at debug level; the status change is logged once.
func (s *Service) audit(ctx context.Context, msg string, d *pdp.Decision, attrs ...any) {
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
