// Package authn authenticates and authorizes every call to Treaty's gRPC server (and, through
// HTTP, its HTTP APIs) against package access: who the caller is, from a Treaty-issued bearer
// token or a verified client certificate, and whether one of its roles may call the method, from
// the one method table in methods.go. Methods missing from the table are refused (fail closed).
//
// Refusals are UNAUTHENTICATED (no credential, or one that is malformed or unknown) or
// PERMISSION_DENIED (a known caller without a role that allows the method; the message names the
// method and the roles that would), and each is recorded in access's refusal log.
//
// The audit trail records the authenticated identity: a request with a top-level string field
// named `actor` has it set to the caller's name, and an actor the caller declared itself is kept
// after it as `name/declared` (clipped to the 256 bytes an actor may hold). Callers holding the
// role service (Treaty's own services) relay the actor of the request they serve, already
// rewritten at their own edge, so their declared actor is kept as it is.
package authn

import (
	"context"
	"crypto/x509"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/certs"
	"github.com/treaty-dev/treaty/fail"
)

// Config configures the interceptors.
type Config struct {
	// Access holds the identities and the refusal log; required.
	Access *access.Access
	// Logger receives refusals at debug level (never a credential); defaults to slog.Default().
	Logger *slog.Logger
}

// Authn authenticates and authorizes calls.
type Authn struct {
	access *access.Access
	log    *slog.Logger
}

// New returns the interceptors' common state.
func New(cfg Config) *Authn {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authn{access: cfg.Access, log: cfg.Logger.With("component", "authn")}
}

type callerKey struct{}

// CallerFrom returns the caller the interceptors authenticated, if any (public methods have
// none).
func CallerFrom(ctx context.Context) (access.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*access.Caller)
	if !ok || c == nil {
		return access.Caller{}, false
	}
	return *c, true
}

// Unary returns the interceptor for unary calls.
func (a *Authn) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		r, c, err := a.admit(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if r.public {
			return handler(ctx, req)
		}
		setActor(req, *c)
		// The caller goes into the context by pointer (access's own, shared and read-only), which
		// allocates nothing beyond the context itself.
		return handler(context.WithValue(ctx, callerKey{}, c), req)
	}
}

// Stream returns the interceptor for streaming calls. Every message a client-streaming call
// receives has its actor set like a unary request's.
func (a *Authn) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		r, c, err := a.admit(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if r.public {
			return handler(srv, ss)
		}
		return handler(srv, &stream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c), caller: c})
	}
}

// stream carries the caller in its context and sets the actor of what it receives.
type stream struct {
	grpc.ServerStream
	ctx    context.Context
	caller *access.Caller
}

func (s *stream) Context() context.Context { return s.ctx }

func (s *stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	setActor(m, *s.caller)
	return nil
}

// The refusals' messages, made once. None holds a credential.
const (
	msgNoCredential = "no credential: send a Treaty token (metadata authorization: Bearer trt_...; the CLI sends the one in --credential-file, e.g. DATA/admin.credential) or a client certificate (the CLI's --cert and --key)"
	msgBadScheme    = "the authorization metadata must be 'Bearer <token>'"
)

// admit authenticates the caller of method and checks that it may call it. Public methods admit
// everyone without looking at credentials.
func (a *Authn) admit(ctx context.Context, method string) (rule, *access.Caller, error) {
	r, known := methods[method]
	if known && r.public {
		return r, nil, nil
	}
	c, via, err := a.authenticate(ctx)
	if err != nil {
		msg := err.Error()
		if fail.KindOf(err) != fail.Unauthenticated {
			msg = msgNoCredential
		}
		return r, c, a.refuse(ctx, "", via, method, codes.Unauthenticated, msg)
	}
	switch {
	case !known:
		return r, c, a.refuse(ctx, c.Name, c.Via, method, codes.PermissionDenied,
			strings.TrimPrefix(method, "/")+" is not in Treaty's access table: no one may call it")
	case r.anyCaller || c.Has(r.roles...):
		return r, c, nil
	}
	return r, c, a.refuse(ctx, c.Name, c.Via, method, codes.PermissionDenied,
		strings.TrimPrefix(method, "/")+" needs "+r.allowedBy+"; "+c.Name+" holds "+roleList(c.Roles))
}

// authenticate finds the caller: by its bearer token if it sent one (a bad token is refused,
// never tried as something else), else by its verified client certificate.
func (a *Authn) authenticate(ctx context.Context) (*access.Caller, string, error) {
	if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
		tok, ok := bearer(vals[0])
		if !ok || len(vals) > 1 {
			return nil, access.ViaToken, fail.Unauthenticatedf(msgBadScheme)
		}
		c, err := a.access.AuthenticateToken(tok)
		return c, access.ViaToken, err
	}
	if p, ok := peer.FromContext(ctx); ok {
		if cert := verifiedLeaf(p.AuthInfo); cert != nil {
			name := certs.Name(cert)
			c, err := a.access.AuthenticateName(name)
			if err != nil {
				return c, access.ViaCertificate, fail.Unauthenticatedf("the client certificate's name %q is not a known identity", fail.Clip(name))
			}
			return c, access.ViaCertificate, nil
		}
	}
	return nil, "", fail.Unauthenticatedf(msgNoCredential)
}

// verifiedLeaf returns the client certificate of a TLS connection whose chain the server
// verified, or nil.
func verifiedLeaf(info credentials.AuthInfo) *x509.Certificate {
	ti, ok := info.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// bearer returns the token of an "authorization: Bearer <token>" value (the scheme is
// case-insensitive, RFC 7235).
func bearer(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimLeft(v[len(scheme):], " "), true
}

// refuse records a refusal and returns its status.
func (a *Authn) refuse(ctx context.Context, caller, via, method string, code codes.Code, msg string) error {
	var addr string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	a.access.RecordRefusal(access.Refusal{Caller: caller, Via: via, Method: method, Code: codeNames[code], Reason: msg, Peer: addr})
	a.log.Debug("call refused", "method", method, "code", codeNames[code], "caller", caller, "via", via, "peer", addr)
	return status.Error(code, msg)
}

// codeNames are the refusals' codes as the refusal log spells them.
var codeNames = map[codes.Code]string{codes.Unauthenticated: "UNAUTHENTICATED", codes.PermissionDenied: "PERMISSION_DENIED"}

func roleList(roles []access.Role) string {
	if len(roles) == 0 {
		return "no role"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// relays reports whether c is one of Treaty's own services, which relay the actor of the request
// they serve. Admin's implied roles do not count: only role service held by name.
func relays(c access.Caller) bool { return slices.Contains(c.Roles, access.RoleService) }
