// Package issuersvc is the gRPC adapter of the issuer: it validates requests, calls the issuer
// domain package and turns its answers into protobuf messages and status codes.
package issuersvc

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// tokenType is the token_type of every access token (RFC 6750).
const tokenType = "Bearer"

// Config configures the service.
type Config struct {
	// Issuer is the domain issuer the service exposes.
	Issuer *issuer.Issuer
	// Logger receives errors the service hides from callers; defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements treatyv1.IssuerServiceServer.
type Service struct {
	treatyv1.UnimplementedIssuerServiceServer
	iss *issuer.Issuer
	log *slog.Logger
}

var _ treatyv1.IssuerServiceServer = (*Service)(nil)

// New returns the service for cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{iss: cfg.Issuer, log: cfg.Logger}
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { treatyv1.RegisterIssuerServiceServer(r, s) }

// IssueToken implements treatyv1.IssuerServiceServer.
func (s *Service) IssueToken(ctx context.Context, req *treatyv1.IssueTokenRequest) (*treatyv1.IssueTokenResponse, error) {
	if err := validateIssueToken(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	out, err := s.iss.Issue(ctx, issueRequest(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.IssueTokenResponse{AccessToken: out.Token, TokenType: tokenType, Credential: credentialProto(out.Credential)}, nil
}

// GetIssuer implements treatyv1.IssuerServiceServer.
func (s *Service) GetIssuer(context.Context, *treatyv1.GetIssuerRequest) (*treatyv1.GetIssuerResponse, error) {
	return &treatyv1.GetIssuerResponse{Issuer: s.iss.IssuerURL(), MaxCredentialTtl: durationpb.New(s.iss.MaxCredentialTTL())}, nil
}

// ListSigningKeys implements treatyv1.IssuerServiceServer.
func (s *Service) ListSigningKeys(context.Context, *treatyv1.ListSigningKeysRequest) (*treatyv1.ListSigningKeysResponse, error) {
	keys, err := s.iss.SigningKeys()
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.ListSigningKeysResponse{Keys: make([]*treatyv1.SigningKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = signingKeyProto(k)
	}
	return out, nil
}

// GetCredential implements treatyv1.IssuerServiceServer.
func (s *Service) GetCredential(_ context.Context, req *treatyv1.GetCredentialRequest) (*treatyv1.GetCredentialResponse, error) {
	if err := validateGetCredential(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	c, err := s.iss.Credential(req.GetId())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.GetCredentialResponse{Credential: credentialProto(c)}, nil
}

// ListCredentials implements treatyv1.IssuerServiceServer.
func (s *Service) ListCredentials(_ context.Context, req *treatyv1.ListCredentialsRequest) (*treatyv1.ListCredentialsResponse, error) {
	if err := validateListCredentials(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	creds, next, err := s.iss.ListCredentials(credentialFilter(req), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.ListCredentialsResponse{Credentials: make([]*treatyv1.Credential, len(creds)), NextPageToken: next}
	for i, c := range creds {
		out.Credentials[i] = credentialProto(c)
	}
	return out, nil
}

// CountLiveCredentials implements treatyv1.IssuerServiceServer.
func (s *Service) CountLiveCredentials(ctx context.Context, req *treatyv1.CountLiveCredentialsRequest) (*treatyv1.CountLiveCredentialsResponse, error) {
	if err := validateCountLiveCredentials(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	// Read the applied sequence before counting: the marks it covers are committed, so the count
	// reflects at least that much of the feed.
	applied, err := s.iss.WaitApplied(ctx, req.GetAppliedSequence())
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	n, ids, err := s.iss.CountLive(liveQuery(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.CountLiveCredentialsResponse{Count: n, CredentialIds: ids, AppliedSequence: applied}, nil
}

// CountLiveCredentialsByPartner implements treatyv1.IssuerServiceServer.
func (s *Service) CountLiveCredentialsByPartner(context.Context, *treatyv1.CountLiveCredentialsByPartnerRequest) (*treatyv1.CountLiveCredentialsByPartnerResponse, error) {
	counts, err := s.iss.CountLiveByPartner()
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	out := &treatyv1.CountLiveCredentialsByPartnerResponse{Counts: make([]*treatyv1.PartnerCredentialCount, len(counts))}
	for i, c := range counts {
		out.Counts[i] = &treatyv1.PartnerCredentialCount{PartnerId: c.PartnerID, LiveCount: c.Live}
	}
	return out, nil
}

// ReportUsage implements treatyv1.IssuerServiceServer.
func (s *Service) ReportUsage(_ context.Context, req *treatyv1.ReportUsageRequest) (*treatyv1.ReportUsageResponse, error) {
	if err := validateReportUsage(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	n, err := s.iss.ReportUsage(usages(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ReportUsageResponse{Updated: uint32(n)}, nil
}
