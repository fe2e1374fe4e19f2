// Package token defines the shape of a Treaty access token, shared by the issuer that mints it
// and the PDP that verifies it: a JWT in the RFC 9068 profile, signed by a key published in the
// feed, carrying the feed sequence at which issuance was decided.
package token

import (
	"strings"
	"time"
)

// Type is the JWT "typ" header of access tokens (RFC 9068).
const Type = "at+jwt"

// DefaultMaxLifetime is the default of the deployment's global maximum credential lifetime: no
// credential lives longer, whatever an integration allows, and a revocation whose credential the
// inventory does not know is kept this long.
const DefaultMaxLifetime = 24 * time.Hour

// MaxScopeLen bounds the length of one scope.
const MaxScopeLen = 256

// ValidScope reports whether s is a scope token as RFC 6749 section 3.3 defines it
// (1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII without spaces, quotes or backslashes), at
// most MaxScopeLen bytes, so that scopes join with spaces into the scope claim unambiguously.
func ValidScope(s string) bool {
	if s == "" || len(s) > MaxScopeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Claims are the claims of a Treaty access token.
type Claims struct {
	// Issuer is the issuer identifier (--issuer-url).
	Issuer string `json:"iss"`
	// Subject is the workload the token was issued to.
	Subject string `json:"sub"`
	// ClientID is the OAuth client, which is the workload too.
	ClientID string `json:"client_id"`
	// Partner is the workload's partner.
	Partner string `json:"partner"`
	// Integration is the workload's integration.
	Integration string `json:"integration"`
	// Scope is the space-delimited list of granted scopes.
	Scope string `json:"scope"`
	// Audience is the one resource the token is for.
	Audience string `json:"aud"`
	// IssuedAt is when the token was minted, in Unix seconds.
	IssuedAt int64 `json:"iat"`
	// Expiry is when the token stops being valid, in Unix seconds.
	Expiry int64 `json:"exp"`
	// ID is the token's unique id, the handle for revoking it.
	ID string `json:"jti"`
	// Sequence is the feed sequence at which issuance was decided: a token is valid under a
	// restored workload, integration or partner only if Sequence is at or after the restore.
	Sequence uint64 `json:"tsq"`
	// Epoch is the epoch of the feed Sequence belongs to. Sequences of a replaced log (restored
	// from a backup, or recreated) say nothing about this one, so a token from another epoch is
	// never honoured.
	Epoch string `json:"tep"`
	// Confirmation, if set, binds the token to a key its holder must prove possession of with
	// each request (RFC 7800): a PDP denies the token without a matching proof.
	Confirmation *Confirmation `json:"cnf,omitempty"`
	// Actor, on a token minted by token exchange (RFC 8693), is the act claim: the workload that
	// exchanged the parent token, with the parent's own act nested inside (section 4.1), so the
	// chain of actors reads from the latest outwards. Subject stays the original subject.
	Actor *Actor `json:"act,omitempty"`
	// Ancestors, on an exchanged token, lists the tokens it was exchanged from, parent first, at
	// most MaxExchangeDepth of them, one per act level: a token is dead as soon as any ancestor is
	// (its jti or its signing key revoked, or its tsq below a watermark).
	Ancestors []Ancestor `json:"anc,omitempty"`
}

// MaxExchangeDepth bounds the exchanges behind one token: a token with this many ancestors cannot
// be exchanged again, and a verifier refuses a token with more.
const MaxExchangeDepth = 4

// Actor is an act claim (RFC 8693 section 4.1): who acts, and who acted before, nested.
type Actor struct {
	// Subject is the acting workload.
	Subject string `json:"sub"`
	// Actor is the previous actor, if the token was exchanged more than once.
	Actor *Actor `json:"act,omitempty"`
}

// Ancestor is a token an exchanged token derives from: what a verifier needs to know that the
// ancestor is still alive.
type Ancestor struct {
	// ID is the ancestor's jti.
	ID string `json:"jti"`
	// KeyID is the kid of the key that signed it.
	KeyID string `json:"kid"`
	// Sequence is its tsq.
	Sequence uint64 `json:"tsq"`
}

// Presenter returns the workload expected to present the token: the latest actor of an
// exchanged token, else the subject. It is the token's client_id.
func (c *Claims) Presenter() string {
	if c.Actor != nil {
		return c.Actor.Subject
	}
	return c.Subject
}

// ActorDepth returns how many act levels the token carries.
func (c *Claims) ActorDepth() int {
	n := 0
	for a := c.Actor; a != nil; a = a.Actor {
		n++
	}
	return n
}

// ChainSequence returns the lowest tsq of the token and its ancestors: an exchanged token is as old
// as the oldest token it derives from, so a watermark that kills an ancestor kills it too.
func (c *Claims) ChainSequence() uint64 {
	tsq := c.Sequence
	for i := range c.Ancestors {
		tsq = min(tsq, c.Ancestors[i].Sequence)
	}
	return tsq
}

// Confirmation is the cnf claim of a sender-constrained token.
type Confirmation struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of the holder's DPoP key (RFC 9449).
	JKT string `json:"jkt,omitempty"`
	// X5TS256 is the base64url SHA-256 thumbprint of the holder's client certificate (RFC 8705).
	X5TS256 string `json:"x5t#S256,omitempty"`
}

// Scopes returns the granted scopes: the scope claim split at single spaces (RFC 6749 section
// 3.3), as HasScope reads it, so that the two never disagree on a claim holding other whitespace.
func (c *Claims) Scopes() []string {
	var out []string
	for s := range strings.SplitSeq(c.Scope, " ") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// HasScope reports whether scope was granted, without allocating.
func (c *Claims) HasScope(scope string) bool {
	for rest := c.Scope; rest != ""; {
		var s string
		s, rest, _ = strings.Cut(rest, " ")
		if s == scope {
			return true
		}
	}
	return false
}
