// Package accesssvc is the gRPC edge of package access: AccessService, to manage identities and
// read the refusal log. Who may call each method is decided by services/authn's method table
// (admin for identities, auditors too for refusals, any caller for WhoAmI).
package accesssvc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/services/edge"
)

// Config configures the Service.
type Config struct {
	// Access holds the identities; required.
	Access *access.Access
	// Logger receives internal errors; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.AccessServiceServer.
type Service struct {
	treatyv1.UnimplementedAccessServiceServer
	a   *access.Access
	log *slog.Logger
}

var _ treatyv1.AccessServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{a: cfg.Access, log: cfg.Logger.With("service", "access")}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterAccessServiceServer(r, s) }

// CreateIdentity implements treatyv1.AccessServiceServer.
func (s *Service) CreateIdentity(ctx context.Context, req *treatyv1.CreateIdentityRequest) (*treatyv1.CreateIdentityResponse, error) {
	roles, err := validateCreate(req)
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	id, tok, err := s.a.CreateIdentity(ctx, req.GetName(), roles, req.GetIssueToken(), req.GetActor(), req.GetReason())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CreateIdentityResponse{Identity: identityProto(id), Token: tok}, nil
}

// GetIdentity implements treatyv1.AccessServiceServer.
func (s *Service) GetIdentity(ctx context.Context, req *treatyv1.GetIdentityRequest) (*treatyv1.GetIdentityResponse, error) {
	if err := access.CheckName("name", req.GetName()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	id, err := s.a.GetIdentity(ctx, req.GetName())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetIdentityResponse{Identity: identityProto(id)}, nil
}

// ListIdentities implements treatyv1.AccessServiceServer.
func (s *Service) ListIdentities(ctx context.Context, _ *treatyv1.ListIdentitiesRequest) (*treatyv1.ListIdentitiesResponse, error) {
	ids, err := s.a.ListIdentities(ctx)
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.ListIdentitiesResponse{Identities: make([]*treatyv1.Identity, len(ids))}
	for i, id := range ids {
		out.Identities[i] = identityProto(id)
	}
	return out, nil
}

// DeleteIdentity implements treatyv1.AccessServiceServer.
func (s *Service) DeleteIdentity(ctx context.Context, req *treatyv1.DeleteIdentityRequest) (*treatyv1.DeleteIdentityResponse, error) {
	if err := validateDelete(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	if err := s.a.DeleteIdentity(ctx, req.GetName(), req.GetActor(), req.GetReason()); err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.DeleteIdentityResponse{}, nil
}

// RotateToken implements treatyv1.AccessServiceServer.
func (s *Service) RotateToken(ctx context.Context, req *treatyv1.RotateTokenRequest) (*treatyv1.RotateTokenResponse, error) {
	if err := validateRotate(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	id, tok, err := s.a.RotateToken(ctx, req.GetName(), req.GetActor(), req.GetReason())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.RotateTokenResponse{Identity: identityProto(id), Token: tok}, nil
}

// WhoAmI implements treatyv1.AccessServiceServer: the caller as the interceptors authenticated
// it.
func (s *Service) WhoAmI(ctx context.Context, _ *treatyv1.WhoAmIRequest) (*treatyv1.WhoAmIResponse, error) {
	c, ok := authn.CallerFrom(ctx)
	if !ok {
		// Only a server without authn's interceptors gets here.
		return nil, edge.Status(s.log, fail.Unauthenticatedf("this server does not authenticate callers"))
	}
	return &treatyv1.WhoAmIResponse{Name: c.Name, Roles: roleNames(c.Roles), Via: c.Via}, nil
}

// ListRefusals implements treatyv1.AccessServiceServer.
func (s *Service) ListRefusals(_ context.Context, req *treatyv1.ListRefusalsRequest) (*treatyv1.ListRefusalsResponse, error) {
	if err := validateRefusals(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	rs, err := s.a.Refusals(req.GetAfterSequence(), int(req.GetPageSize()))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.ListRefusalsResponse{Refusals: make([]*treatyv1.Refusal, len(rs)), Dropped: s.a.DroppedRefusals()}
	for i, r := range rs {
		out.Refusals[i] = refusalProto(r)
	}
	return out, nil
}
