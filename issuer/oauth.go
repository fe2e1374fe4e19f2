package issuer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// What the OAuth HTTP face (services/oauthhttp) needs from the issuer beyond Issue: finer
// refusal marks than fail kinds, client authentication on its own (for revocation and
// introspection), and the token endpoint's place.

// TokenEndpointPath is where the token endpoint is served under the issuer URL. Client assertions
// may name either the issuer identifier or the token endpoint URL as their audience (RFC 7523
// section 3 allows both; many client libraries send the latter).
const TokenEndpointPath = "/oauth2/token"

// Marks on refusals, for callers that must tell them apart beyond their fail kind (the OAuth
// error codes): test with errors.Is. A marked error is still a *fail.Error of its kind.
var (
	// ErrInvalidScope marks a requested scope the integration's ceiling does not hold.
	ErrInvalidScope = errors.New("requested scope outside the ceiling")
	// ErrInvalidTarget marks a requested audience (resource) the integration does not list.
	ErrInvalidTarget = errors.New("requested audience not allowed")
	// ErrInvalidGrant marks a refused grant the client presented (a token exchange's subject or
	// actor token): for grant types that carry one.
	ErrInvalidGrant = errors.New("invalid grant")
)

// markedError is a fail error carrying a mark.
type markedError struct {
	err  *fail.Error
	mark error
}

func (e *markedError) Error() string   { return e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.err, e.mark} }

// Mark returns err (a fail error, whose kind and message are kept) marked with mark, one of
// ErrInvalidScope, ErrInvalidTarget or ErrInvalidGrant.
func Mark(err *fail.Error, mark error) error { return &markedError{err: err, mark: mark} }

// AuthenticateClient authenticates the client of req by its authentication fields alone (a
// client secret or a client assertion, which is consumed like any other) and returns the workload
// id with the method it used. The OAuth revocation and introspection endpoints use it: they need
// to know the client, not to issue.
func (i *Issuer) AuthenticateClient(ctx context.Context, req Request) (workloadID, method string, err error) {
	w, method, claim, err := i.authenticateClient(ctx, req)
	if err == nil {
		err = i.allowMethod(ctx, w, method)
		if err != nil {
			i.consume(claim) // refused, and still single-use
		}
	}
	if err == nil && claim != nil {
		// The assertion authenticates once: take its jti now, and fail if another request did.
		now := i.cfg.Now()
		err = i.cfg.Store.Batch(func(tx store.Tx) error { return claim.take(tx, now) })
		if err != nil && err != errReplayed {
			err = fail.Unavailablef(err, "the client assertion could not be recorded as used; retry with a new one")
		}
	}
	if err != nil {
		i.log.Info("issuer: client authentication failed", "err", err)
		return "", "", err
	}
	return w.ID, method, nil
}

// allowMethod refuses a client authentication method the client's integration does not allow,
// for the endpoints that authenticate a client without issuing (revocation, introspection) and
// before a token exchange looks at its subject token.
func (i *Issuer) allowMethod(ctx context.Context, w Workload, method string) error {
	integ, err := i.cfg.Directory.Integration(ctx, w.IntegrationID)
	if err != nil {
		return lookupError(err, "integration", w.IntegrationID)
	}
	return checkClientMethod(integ, method)
}

// assertionAudienceOK reports whether a client assertion's aud names this issuer: its identifier
// or its token endpoint URL.
func (i *Issuer) assertionAudienceOK(aud jwt.Audience) bool {
	return slices.ContainsFunc(aud, func(a string) bool { return a == i.cfg.IssuerURL || a == i.TokenEndpoint() })
}

// TokenEndpoint returns the token endpoint's URL: the issuer URL followed by TokenEndpointPath.
func (i *Issuer) TokenEndpoint() string { return trimSlash(i.cfg.IssuerURL) + TokenEndpointPath }

// KeyPrepublish returns how long a new signing key is published before it signs: caches of the
// JWKS must expire sooner, so every verifier has a key before the first token it signed.
func (i *Issuer) KeyPrepublish() time.Duration { return i.cfg.KeyPrepublish }

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
