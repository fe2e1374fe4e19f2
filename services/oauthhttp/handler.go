// Package oauthhttp is the issuer's standard OAuth 2.0 face over HTTP, for partners' off-the-shelf
// clients:
//
//   - POST /oauth2/token: the client_credentials grant (RFC 6749 §4.4) with scope and an audience,
//     and the token-exchange grant (RFC 8693) when Config.TokenExchange is set.
//   - POST /oauth2/revoke: RFC 7009 revocation of a client's own tokens, into the revoker.
//   - POST /oauth2/introspect: RFC 7662 introspection, answered by the PDP's view.
//   - GET /.well-known/jwks.json: the issuer's published signing keys.
//   - GET /.well-known/oauth-authorization-server: RFC 8414 metadata.
//
// Client authentication: private_key_jwt (RFC 7523 client_assertion, aud the issuer identifier
// or the token endpoint URL), client_secret_basic and client_secret_post; exactly one per request.
// Config.Transport lets mTLS (RFC 8705) and DPoP (RFC 9449) add what the connection carries.
//
// Audience: a token has exactly one audience, given as the RFC 8707 "resource" parameter or as
// "audience" (the RFC 8693 name, which many clients send for client_credentials too); either may
// be used, both only with the same value. It must be one of the integration's audiences.
//
// Error codes (RFC 6749 §5.2, RFC 8707 §2): failed client authentication of any kind (unknown
// client, wrong or expired secret, bad, expired, replayed or oversized assertion, wrong key,
// "none" or HMAC algorithms) is 401 invalid_client with a WWW-Authenticate challenge, one answer
// for all so that callers learn nothing about which ids exist. A client that authenticated but may
// not obtain credentials now (workload, integration or partner suspended, retired or offboarded,
// contract ended, the PDP or a policy denying) is 400 unauthorized_client: the client is who it
// says, its credentials are fine and must not be rotated, but it is not authorized for the grant;
// a token exchange's subject token that is invalid or unacceptable is invalid_request, as RFC 8693
// section 2.2.2 requires (issuer.ErrInvalidGrant marks it). A
// scope outside the integration's ceiling or malformed is invalid_scope, an audience outside its
// list or missing is invalid_target, other malformed requests invalid_request, a grant type other
// than those above unsupported_grant_type, an unreachable registry or PDP 503
// temporarily_unavailable with Retry-After.
//
// Nothing here logs a token, an assertion or a secret; request bodies are bounded and must be
// application/x-www-form-urlencoded, with no parameter in the query string and none repeated.
package oauthhttp

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/pdp"
)

// The endpoints' paths.
const (
	PathToken      = issuer.TokenEndpointPath
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	PathJWKS       = "/.well-known/jwks.json"
	PathMetadata   = "/.well-known/oauth-authorization-server"
)

// GrantTypeTokenExchange is the RFC 8693 grant type.
const GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// DefaultMaxBodyBytes bounds a request body unless Config says otherwise: room for an assertion
// over issuer.MaxAssertionSize (refused as invalid_client by the issuer), little more.
const DefaultMaxBodyBytes = 64 << 10

// maxJWKSAge caps the JWKS's Cache-Control max-age.
const maxJWKSAge = 5 * time.Minute

// MinResourceServerSecret is the shortest resource-server secret accepted.
const MinResourceServerSecret = 32

// Revoker revokes a credential by its jti, into the revoker's feed (see RevocationClient).
type Revoker interface {
	RevokeCredential(ctx context.Context, jti, reason, actor string) error
}

// Introspector answers for a token on its own; *pdp.PDP implements it.
type Introspector interface {
	Introspect(ctx context.Context, token string) (pdp.Introspection, error)
}

// ExchangeRequest is a token-exchange request as the handler received it: the client's
// authentication fields, not yet verified, and the whole form (subject_token, subject_token_type,
// actor_token, actor_token_type, requested_token_type, scope, resource, audience).
type ExchangeRequest struct {
	Client issuer.Request
	Form   url.Values
}

// Config configures the Handler.
type Config struct {
	// Issuer is the in-process issuer; required.
	Issuer *issuer.Issuer
	// Revoker, if set, serves /oauth2/revoke.
	Revoker Revoker
	// Introspector, if set (the PDP running in this process), serves /oauth2/introspect.
	Introspector Introspector
	// ResourceServers are the credentials of resource servers allowed to introspect any token:
	// id -> secret (at least MinResourceServerSecret bytes), sent with HTTP Basic authentication.
	// Workloads may introspect only their own tokens.
	ResourceServers map[string]string
	// TokenExchange, if set, handles the token-exchange grant; nil answers unsupported_grant_type.
	// Its errors are mapped like the issuer's (mark a bad subject token with issuer.ErrInvalidGrant).
	TokenExchange func(ctx context.Context, req ExchangeRequest) (issuer.Issued, error)
	// Transport, if set, adds to every client's request (token, revocation, introspection) what
	// the connection carries beyond the form (r.TLS.PeerCertificates for mTLS client
	// authentication and certificate-bound tokens, the DPoP header for DPoP-bound tokens); its
	// error is mapped like the issuer's.
	Transport func(r *http.Request, req *issuer.Request) error
	// MutualTLS says the listener asks clients for TLS certificates, so that tls_client_auth,
	// self_signed_tls_client_auth and certificate-bound tokens work; the metadata advertises them
	// only then. (The plaintext loopback listener of treaty serve does not, until TLS arrives.)
	MutualTLS bool
	// AuthMethods lists the client authentication methods the metadata advertises beyond
	// private_key_jwt, client_secret_basic and client_secret_post (e.g. tls_client_auth).
	AuthMethods []string
	// AssertionAlgorithms are the JWS algorithms advertised for client assertions; default EdDSA.
	AssertionAlgorithms []string
	// ExtraMetadata is merged into the RFC 8414 metadata (e.g. dpop_signing_alg_values_supported
	// once DPoP lands, tls_client_certificate_bound_access_tokens).
	ExtraMetadata map[string]any
	// MaxBodyBytes bounds a request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives operational logs (never tokens, assertions or secrets); defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Handler serves the OAuth endpoints. It is an http.Handler, safe for concurrent use.
type Handler struct {
	cfg       Config
	iss       *issuer.Issuer
	log       *slog.Logger
	base      string
	resources map[string][sha256.Size]byte // resource server id -> SHA-256 of its secret
	metadata  []byte
	jwksAge   string
}

// New returns the handler, or an error if cfg is incomplete.
func New(cfg Config) (*Handler, error) {
	if cfg.Issuer == nil {
		return nil, errors.New("oauthhttp: Config.Issuer is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, iss: cfg.Issuer, log: cfg.Logger.With("service", "oauth"),
		base: strings.TrimRight(cfg.Issuer.IssuerURL(), "/"), resources: map[string][sha256.Size]byte{}}
	for id, secret := range cfg.ResourceServers {
		if id == "" || strings.Contains(id, ":") || len(secret) < MinResourceServerSecret {
			return nil, fmt.Errorf("oauthhttp: resource server %q needs an id without ':' and a secret of at least %d bytes", id, MinResourceServerSecret)
		}
		h.resources[id] = sha256.Sum256([]byte(secret))
	}
	// The JWKS may be cached, but for less than the time a new key is published before it signs,
	// so every verifier holds the key before the first token it signed.
	age := min(maxJWKSAge, cfg.Issuer.KeyPrepublish()/2)
	h.jwksAge = "public, max-age=" + strconv.Itoa(int(age.Seconds()))
	var err error
	if h.metadata, err = json.Marshal(h.buildMetadata()); err != nil {
		return nil, fmt.Errorf("oauthhttp: metadata: %w", err)
	}
	return h, nil
}

// Register mounts the handler on mux at its paths (the revocation and introspection endpoints
// only when configured), so it can share a server with other APIs.
func (h *Handler) Register(mux *http.ServeMux) {
	paths := []string{PathToken, PathJWKS, PathMetadata}
	if h.cfg.Revoker != nil {
		paths = append(paths, PathRevoke)
	}
	if h.cfg.Introspector != nil {
		paths = append(paths, PathIntrospect)
	}
	for _, p := range paths {
		mux.Handle(p, h)
	}
}

// ServeHTTP routes a request to its endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathMetadata:
		if allow(w, r, http.MethodGet) {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			writeRaw(w, http.StatusOK, h.metadata)
		}
	case PathJWKS:
		if allow(w, r, http.MethodGet) {
			h.jwks(w)
		}
	case PathToken:
		if allow(w, r, http.MethodPost) {
			h.token(w, r)
		}
	case PathRevoke:
		if h.cfg.Revoker == nil {
			http.NotFound(w, r)
		} else if allow(w, r, http.MethodPost) {
			h.revoke(w, r)
		}
	case PathIntrospect:
		if h.cfg.Introspector == nil {
			http.NotFound(w, r)
		} else if allow(w, r, http.MethodPost) {
			h.introspect(w, r)
		}
	default:
		http.NotFound(w, r)
	}
}

// allow answers 405 unless r uses method (GET also admits HEAD).
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, errInvalidRequest, "use "+method)
	return false
}

func (h *Handler) jwks(w http.ResponseWriter) {
	raw, err := h.iss.JWKS()
	if err != nil {
		h.log.Error("oauth: JWKS", "err", err)
		writeError(w, http.StatusInternalServerError, errServer, "the signing keys could not be read")
		return
	}
	w.Header().Set("Cache-Control", h.jwksAge)
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// buildMetadata returns the RFC 8414 authorization server metadata.
func (h *Handler) buildMetadata() map[string]any {
	authMethods := []string{issuer.MethodPrivateKeyJWT, issuer.MethodClientSecretBasic, issuer.MethodClientSecretPost}
	if h.cfg.MutualTLS {
		authMethods = append(authMethods, issuer.MethodTLSClientAuth, issuer.MethodSelfSignedTLSClientAuth)
	}
	authMethods = append(authMethods, h.cfg.AuthMethods...)
	algs := h.cfg.AssertionAlgorithms
	if len(algs) == 0 {
		algs = []string{"EdDSA", "ES256", "RS256"}
	}
	grants := []string{"client_credentials"}
	if h.cfg.TokenExchange != nil {
		grants = append(grants, GrantTypeTokenExchange)
	}
	m := map[string]any{
		"issuer":                                h.iss.IssuerURL(),
		"token_endpoint":                        h.base + PathToken,
		"jwks_uri":                              h.base + PathJWKS,
		"grant_types_supported":                 grants,
		"response_types_supported":              []string{}, // no authorization endpoint
		"token_endpoint_auth_methods_supported": authMethods,
		"token_endpoint_auth_signing_alg_values_supported": algs,
		"dpop_signing_alg_values_supported":                []string{"EdDSA", "ES256", "RS256"},
		"tls_client_certificate_bound_access_tokens":       h.cfg.MutualTLS,
	}
	if h.cfg.Revoker != nil {
		m["revocation_endpoint"] = h.base + PathRevoke
		m["revocation_endpoint_auth_methods_supported"] = authMethods
		m["revocation_endpoint_auth_signing_alg_values_supported"] = algs
	}
	if h.cfg.Introspector != nil {
		m["introspection_endpoint"] = h.base + PathIntrospect
		m["introspection_endpoint_auth_methods_supported"] = authMethods
		m["introspection_endpoint_auth_signing_alg_values_supported"] = algs
	}
	for k, v := range h.cfg.ExtraMetadata {
		m[k] = v
	}
	return m
}

// writeJSON writes v as a JSON response that no cache may keep (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		status, raw = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeRaw(w, status, raw)
}

func writeRaw(w http.ResponseWriter, status int, raw []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(raw)
}
