package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/token"
)

// Token exchange (RFC 8693). A workload presents an access token this issuer minted (the subject
// token, the parent) and receives a narrower one for a downstream audience (the child):
//
//   - Who may exchange: any active workload of the parent's integration, the parent's subject
//     included, authenticated like any issuance. The integration is the unit a ceiling and a set
//     of audiences are granted to, so a chain never crosses integrations (nor partners).
//   - The child keeps the parent's subject; its client_id is the requester, and its act claim
//     names the requester with the parent's act nested inside (RFC 8693 section 4.1). Its anc
//     claim lists the parent and the parent's ancestors (jti, kid, tsq), at most
//     token.MaxExchangeDepth: a parent with that many ancestors cannot be exchanged.
//   - Scopes: a subset of the parent's (all of them if none is requested) and of the integration's
//     current ceiling; anything else is refused (marked ErrInvalidScope). Audience: one the
//     integration lists (marked ErrInvalidTarget otherwise). Lifetime: the usual caps, and never
//     past the parent's exp. A subject token that is not a live token of this issuer is refused
//     as Invalid, marked ErrInvalidGrant.
//   - The parent must be live: verified against this issuer's published keys with the key's own
//     algorithm, then checked by the PDP (revocations, kill switch, lifecycle, its chain). The PDP
//     keeps the child dead whenever any ancestor dies later (see pdp/exchange.go), so a race
//     between this check and a revocation cannot leave a live child of a dead parent.
//   - actor_token is refused: the requester's client authentication already proves who acts, and
//     Treaty has no second party whose token could stand for it.
//   - A sender-constrained parent (cnf) is refused for now: presenting it would need a proof of
//     possession of its key, which the exchange does not carry yet. A child is bound like any
//     issuance, to what its requester proves at the token endpoint.

// Token exchange identifiers (RFC 8693).
const (
	// GrantTypeTokenExchange is the grant_type of a token exchange at the token endpoint.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the only subject_token_type accepted, and the
	// issued_token_type of every exchanged token.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// maxSubjectToken bounds the subject token the issuer parses (as the PDP bounds tokens).
const maxSubjectToken = 8 << 10

// subjectAlgorithms keeps "none" and symmetric algorithms out before any key is looked at; the
// token is then verified only with the algorithm its key was published with.
var subjectAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

// ExchangeRequest asks to exchange an access token for a narrower one.
type ExchangeRequest struct {
	// Request carries the requester's client authentication and what it asks for: Scopes (empty:
	// the parent's), Audience (the downstream audience; or give Resource), TTL, MinSequence.
	Request
	// SubjectToken is the parent access token. A secret: never log it.
	SubjectToken string
	// SubjectTokenType must be TokenTypeAccessToken.
	SubjectTokenType string
	// ActorToken and ActorTokenType must be empty: actor tokens are refused.
	ActorToken, ActorTokenType string
	// Resource (RFC 8693, RFC 8707) may name the downstream audience instead of Audience; when
	// both are given they must be equal.
	Resource string
}

// TokenCheck asks the PDP whether a token may be used now for one action on its audience.
type TokenCheck struct {
	Token       string
	Action      string
	Resource    string
	MinSequence uint64
}

// TokenChecker asks the PDP whether a token is live. An Authorizer that implements it (as
// pdpsvc.NewAuthorizer's does) lets the issuer exchange tokens; with one that does not, Exchange
// fails with a Precondition error.
type TokenChecker interface {
	CheckToken(ctx context.Context, req TokenCheck) (IssuanceDecision, error)
}

// parentToken is the verified subject token of an exchange.
type parentToken struct {
	raw    string // a secret: never log it
	claims token.Claims
	kid    string
}

// Exchange authenticates the requesting workload, verifies the subject token and has the PDP
// confirm it is live, then mints a child token as Issue does, with the exchange's narrowing (see
// above), and records it in the inventory with its parent.
func (i *Issuer) Exchange(ctx context.Context, req ExchangeRequest) (Issued, error) {
	if err := checkExchange(&req); err != nil {
		return Issued{}, err
	}
	checker, ok := i.cfg.Authorizer.(TokenChecker)
	if !ok {
		return Issued{}, fail.Preconditionf("token exchange is not available: the issuer's decision point client cannot check tokens")
	}
	w, method, claim, err := i.authenticateClient(ctx, req.Request)
	req.authMethod = method
	if err != nil {
		i.log.Info("issuer: client authentication failed", "err", err)
		return Issued{}, err
	}
	// The method must be allowed before the subject token is looked at: the answer says whether
	// a token is live.
	if err := i.allowMethod(ctx, w, method); err != nil {
		i.consume(claim)
		i.log.Info("issuer: client authentication refused", "workload", w.ID, "err", err)
		return Issued{}, err
	}
	parent, err := i.verifySubject(req.SubjectToken)
	if err != nil {
		i.consume(claim) // the assertion stays single-use when the exchange is refused too
		i.log.Info("issuer: token exchange refused", "workload", w.ID, "err", err)
		return Issued{}, err
	}
	out, err := i.exchange(ctx, checker, w, parent, req.Request, claim)
	if err != nil {
		i.consume(claim)
		i.log.Info("issuer: token exchange refused", "workload", w.ID, "parent_jti", parent.claims.ID, "err", err)
		return Issued{}, err
	}
	c := out.Credential
	i.log.Info("issuer: token exchanged", "jti", c.ID, "parent_jti", c.ParentID, "workload", c.WorkloadID,
		"subject", parent.claims.Subject, "partner", c.PartnerID, "integration", c.IntegrationID, "scopes", c.Scopes,
		"audience", c.Audience, "expire_time", c.ExpireTime, "kid", c.Kid, "sequence", c.Sequence)
	return out, nil
}

// checkExchange checks the exchange's own parameters, then the request's as Issue does.
func checkExchange(req *ExchangeRequest) error {
	switch {
	case req.SubjectToken == "":
		return fail.Invalidf("subject_token", "subject_token is required: the access token to exchange")
	case len(req.SubjectToken) > maxSubjectToken:
		return fail.Invalidf("subject_token", "subject_token is longer than %d bytes", maxSubjectToken)
	case req.SubjectTokenType != TokenTypeAccessToken:
		return fail.Invalidf("subject_token_type", "subject_token_type must be %q: only this issuer's access tokens can be exchanged", TokenTypeAccessToken)
	case req.ActorToken != "" || req.ActorTokenType != "":
		return fail.Invalidf("actor_token", "actor_token is not supported: the client's own authentication identifies the actor")
	case req.Resource != "" && req.Audience != "" && req.Resource != req.Audience:
		return fail.Invalidf("resource", "resource and audience name different targets; give one")
	}
	if req.Audience == "" {
		req.Audience = req.Resource
	}
	r := req.Request
	if len(r.Scopes) == 0 {
		// No scope asks for the parent's, checked against it later: check the rest here.
		r.Scopes = []string{"parent-scopes"}
	}
	return checkRequest(r)
}

// errSubject is the one answer to a subject token the issuer cannot verify as its own, live
// access token: RFC 8693 makes it invalid_request, and the details go to the log only.
var errSubject = Mark(fail.Invalidf("subject_token", "subject_token is not a valid, unexpired access token of this issuer"), ErrInvalidGrant)

// verifySubject verifies a subject token against the issuer's published signing keys (next,
// active, or retired with live tokens), pinned to the algorithm each key was published with, and
// checks its issuer, type, expiry and claims.
func (i *Issuer) verifySubject(raw string) (*parentToken, error) {
	jws, err := jose.ParseSignedCompact(raw, subjectAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errSubject
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); h.KeyID == "" || !strings.EqualFold(typ, token.Type) {
		return nil, errSubject
	}
	keys, err := i.SigningKeys()
	if err != nil {
		return nil, err
	}
	n := slices.IndexFunc(keys, func(k SigningKey) bool { return k.Kid == h.KeyID && k.InJWKS() })
	if n < 0 || keys[n].Algorithm != h.Algorithm {
		i.log.Info("issuer: subject token names no published key of its algorithm", "kid", h.KeyID, "alg", h.Algorithm)
		return nil, errSubject
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(keys[n].PublicJWK); err != nil {
		return nil, fmt.Errorf("issuer: decode published key %s: %w", h.KeyID, err)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		i.log.Info("issuer: subject token signature does not verify", "kid", h.KeyID)
		return nil, errSubject
	}
	var c token.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errSubject
	}
	switch {
	case c.Issuer != i.cfg.IssuerURL || c.Subject == "" || c.Partner == "" || c.Integration == "" || c.ID == "" ||
		c.Sequence == 0 || c.Scope == "" || c.Audience == "":
		i.log.Info("issuer: subject token lacks claims or names another issuer", "kid", h.KeyID)
		return nil, errSubject
	case c.Expiry <= i.cfg.Now().Unix():
		return nil, Mark(fail.Invalidf("subject_token", "subject_token has expired"), ErrInvalidGrant)
	}
	return &parentToken{raw: raw, claims: c, kid: h.KeyID}, nil
}

// exchange checks the parent against the requester, has the PDP confirm the parent is live, and
// mints the child through issue.
func (i *Issuer) exchange(ctx context.Context, checker TokenChecker, w Workload, parent *parentToken, req Request, claim *replayClaim) (Issued, error) {
	p := &parent.claims
	switch {
	case p.Partner != w.PartnerID || p.Integration != w.IntegrationID:
		return Issued{}, fail.Deniedf("workload %q may only exchange tokens of its own integration %q", w.ID, w.IntegrationID)
	case len(p.Ancestors) >= token.MaxExchangeDepth:
		return Issued{}, fail.Deniedf("the subject token was exchanged %d times already, the most allowed", len(p.Ancestors))
	case p.Confirmation != nil:
		return Issued{}, fail.Deniedf("the subject token is sender-constrained (cnf); exchanging such tokens is not supported")
	}
	if len(req.Scopes) == 0 {
		req.Scopes = p.Scopes()
	}
	for _, s := range req.Scopes {
		if !p.HasScope(s) {
			return Issued{}, Mark(fail.Deniedf("scope %q is not granted by the subject token", s), ErrInvalidScope)
		}
	}
	// The PDP checks the parent as a gateway would, for the first scope the child asks for on the
	// parent's audience: so a partner's policy that forbids that use forbids exchanging it too.
	dec, err := checker.CheckToken(ctx, TokenCheck{Token: parent.raw, Action: req.Scopes[0], Resource: p.Audience, MinSequence: req.MinSequence})
	switch {
	case fail.KindOf(err) == fail.Invalid:
		// The token carries something no check can be asked about (its audience, say): it is
		// not a live subject token, whatever signed it. Retrying would not help.
		return Issued{}, Mark(fail.Invalidf("subject_token", "subject_token cannot be checked: its audience or scope is malformed"), ErrInvalidGrant)
	case err != nil:
		return Issued{}, unavailable(err, "the decision point could not check the subject token; retry shortly")
	}
	if !dec.Allow {
		if slices.Contains(dec.Reasons, reasonSyncing) || slices.Contains(dec.Reasons, reasonStale) {
			return Issued{}, fail.Unavailablef(fmt.Errorf("decision point reasons %v", dec.Reasons), "the decision point is catching up; retry")
		}
		return Issued{}, Mark(fail.Invalidf("subject_token", "subject_token is not live: %s", strings.Join(dec.Reasons, ", ")), ErrInvalidGrant)
	}
	// The child is decided at or after the sequence the parent was found live at.
	req.MinSequence = max(req.MinSequence, dec.Sequence)
	req.parent = parent
	return i.issue(ctx, w, req, claim)
}

// capExpiry caps an exchanged token's exp at its parent's: a child never outlives its parent. It is
// a no-op for an issuance (nil parent).
func (p *parentToken) capExpiry(iat, exp time.Time) (time.Time, error) {
	if p == nil {
		return exp, nil
	}
	if pexp := time.Unix(p.claims.Expiry, 0).UTC(); exp.After(pexp) {
		exp = pexp
	}
	if !exp.After(iat) {
		return time.Time{}, Mark(fail.Invalidf("subject_token", "subject_token expires in less than a second"), ErrInvalidGrant)
	}
	return exp, nil
}

// extend adds the chain to an exchanged token's claims: client_id the requester, act, anc. The
// child must be decided in the parent's feed epoch: a parent from a replaced log is dead, and so
// must its child be. It is a no-op for an issuance (nil parent).
func (p *parentToken) extend(c *token.Claims) error {
	if p == nil {
		return nil
	}
	if c.Epoch != p.claims.Epoch {
		return Mark(fail.Invalidf("subject_token", "subject_token belongs to another epoch of the feed (it was replaced); it is not live"), ErrInvalidGrant)
	}
	c.Subject = p.claims.Subject
	c.Actor = &token.Actor{Subject: c.ClientID, Actor: p.claims.Actor}
	c.Ancestors = make([]token.Ancestor, 0, len(p.claims.Ancestors)+1)
	c.Ancestors = append(c.Ancestors, token.Ancestor{ID: p.claims.ID, KeyID: p.kid, Sequence: p.claims.Sequence})
	c.Ancestors = append(c.Ancestors, p.claims.Ancestors...)
	return nil
}

// id returns the parent's jti, or "" for an issuance (nil parent).
func (p *parentToken) id() string {
	if p == nil {
		return ""
	}
	return p.claims.ID
}
