// Package extauthz is Envoy's external authorization gRPC API (envoy.service.auth.v3.Authorization)
// over the policy decision point: Envoy (or any proxy speaking ext_authz) asks before forwarding a
// request, and Treaty answers from the request's bearer token, the route's action and resource,
// and the source address.
//
// The token comes from the authorization header, scheme Bearer or DPoP (any case); with DPoP the
// dpop header is the proof, for the request's method and URI. The client certificate's thumbprint,
// for certificate-bound tokens, comes from the attributes' source certificate (Envoy's
// include_peer_certificate) or, if Config.TrustForwardedClientCert says so, from the
// x-forwarded-client-cert header. A route table maps the method and path to the action (scope)
// and resource (audience); the first route that matches wins.
//
// Every answer carries the reason in the x-treaty-reason header (and the decision id in
// x-treaty-decision-id when the PDP decided). A deny is rpc status PERMISSION_DENIED with an HTTP
// denied response: 401 when the credential is missing or not valid (token_missing,
// malformed_token, expired, revoked, ...), 400 for a path that is not normalized
// (path_not_normalized), 403 otherwise (no_route, scope_missing, partner_blocked, ...). An allow
// is OK, and tells the upstream the decision id, the workload and the partner in headers.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/edge"
)

// Reasons of the denies this adapter decides itself, before asking the PDP. The PDP's own reasons
// are pdp's Reason constants.
const (
	// ReasonTokenMissing: the request has no authorization header with a Bearer or DPoP token.
	ReasonTokenMissing = "token_missing"
	// ReasonNoRoute: no route of the table matches the request's method and path.
	ReasonNoRoute = "no_route"
	// ReasonPathNotNormalized: the path has empty, "." or ".." segments or encoded slashes,
	// backslashes or dots, so no route can be trusted to match what the upstream would serve.
	ReasonPathNotNormalized = "path_not_normalized"
)

// The headers of every answer.
const (
	HeaderReason     = "x-treaty-reason"
	HeaderDecisionID = "x-treaty-decision-id"
	// HeaderWorkload and HeaderPartner tell the upstream who was allowed (set on allows only,
	// replacing anything the client sent).
	HeaderWorkload = "x-treaty-workload"
	HeaderPartner  = "x-treaty-partner"
)

// Config configures the Service.
type Config struct {
	// PDP makes the decisions; required. The server assembly runs its Run loop.
	PDP *pdp.PDP
	// Routes map method and path to action and resource; the first match wins, and a request no
	// route matches is denied (no_route). Required: LoadRoutes reads them from a file.
	Routes []Route
	// Environment is the environment the protected services run in (such as "production"),
	// passed to policy conditions.
	Environment string
	// TrustForwardedClientCert takes the client certificate from the x-forwarded-client-cert
	// header when the attributes carry none. Set it only when the proxy sanitizes that header
	// (Envoy: forward_client_cert_details SANITIZE_SET), or a client could claim any certificate.
	TrustForwardedClientCert bool
	// Logger receives denies at debug level and internal errors (never tokens or proofs); defaults
	// to slog.Default().
	Logger *slog.Logger
}

// Service implements Envoy's Authorization service.
type Service struct {
	authv3.UnimplementedAuthorizationServer
	pdp       *pdp.PDP
	routes    []Route
	env       string
	trustXFCC bool
	log       *slog.Logger
}

var _ authv3.AuthorizationServer = (*Service)(nil)

// New returns the service, or an error if cfg is incomplete or its routes are invalid.
func New(cfg Config) (*Service, error) {
	if cfg.PDP == nil {
		return nil, errors.New("extauthz: Config.PDP is required")
	}
	if err := checkRoutes(cfg.Routes); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{pdp: cfg.PDP, routes: cfg.Routes, env: cfg.Environment, trustXFCC: cfg.TrustForwardedClientCert,
		log: cfg.Logger.With("service", "extauthz")}, nil
}

// Register registers the service with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(r, s) }

// Check decides one HTTP request. Denies are answers, not errors; the only errors are a request
// without HTTP attributes (INVALID_ARGUMENT) and a PDP that cannot answer (UNAVAILABLE), which
// Envoy's failure_mode_allow then decides.
func (s *Service) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return nil, status.Error(codes.InvalidArgument, "attributes.request.http is required: Treaty authorizes HTTP requests")
	}
	cred := credentialOf(h)
	if cred.token == "" {
		return s.deny(ctx, h, ReasonTokenMissing, "", cred.scheme), nil
	}
	path := requestPath(h.GetPath())
	if !normalized(path) {
		return s.deny(ctx, h, ReasonPathNotNormalized, "", cred.scheme), nil
	}
	route, ok := match(s.routes, h.GetMethod(), path)
	if !ok {
		return s.deny(ctx, h, ReasonNoRoute, "", cred.scheme), nil
	}
	check := pdp.CheckRequest{
		Token: cred.token, Action: route.Action, Resource: route.Resource,
		Context:   pdp.RequestContext{SourceIP: sourceIP(req.GetAttributes()), Environment: s.env},
		Proof:     cred.proof,
		RequestID: requestID(h),
	}
	check.Proof.CertThumbprint = certThumbprint(req.GetAttributes(), s.trustXFCC)
	d, err := s.pdp.Check(ctx, check)
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	if !d.Allow {
		return s.deny(ctx, h, d.Reasons[0], d.DecisionID.String(), cred.scheme), nil
	}
	return allowed(d), nil
}

// deny answers a deny, logging it at debug level (the decision log keeps the PDP's).
// The path is logged without its query, which may carry secrets.
func (s *Service) deny(ctx context.Context, h *authv3.AttributeContext_HttpRequest, reason, decisionID, scheme string) *authv3.CheckResponse {
	s.log.DebugContext(ctx, "request denied", "reason", reason, "decision_id", decisionID, "method", h.GetMethod(),
		"path", requestPath(h.GetPath()), "request_id", requestID(h))
	return denied(reason, decisionID, scheme)
}
