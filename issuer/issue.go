package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/token"
)

// DefaultTTL is a credential's lifetime when the request names none.
const DefaultTTL = 5 * time.Minute

// Request limits, beyond which a request is malformed.
const (
	maxScopes   = 64
	maxAudience = 1024
)

// The PDP's deny reasons the issuer acts on.
const (
	reasonKeyRevoked = "key_revoked"
	reasonSyncing    = "syncing"
	reasonStale      = "stale"
)

// The PDP's reasons for not knowing an entity the registry has just told the issuer about: the
// registry's change has not reached that PDP yet, so the issuer asks again for a little while.
var laggingReasons = []string{"partner_unknown", "integration_unknown", "workload_unknown"}

const (
	// lagRetries and lagFirstWait bound that: 50+100+200+400+800 ms, about 1.5 s in all.
	lagRetries   = 5
	lagFirstWait = 50 * time.Millisecond
)

// Request asks for a credential.
type Request struct {
	// AssertionType is empty or AssertionType.
	AssertionType string
	// Assertion is the workload's signed client assertion (see SignAssertion).
	Assertion string
	// Scopes are the scopes requested, each inside the integration's ceiling.
	Scopes []string
	// Audience is the one audience requested, one the integration lists.
	Audience string
	// TTL is the lifetime requested; zero means DefaultTTL.
	TTL time.Duration
	// MinSequence, if set, makes the PDP decide at or after this feed sequence.
	MinSequence uint64
	// ClientID is the client_id the request names: the workload id. Required with a client secret
	// and with TLS client authentication; beside a client assertion it must name the assertion's
	// workload if set.
	ClientID string
	// ClientSecret, if set, authenticates the client instead of an assertion (see
	// clientauth.go). A secret: never log it.
	ClientSecret string
	// AuthMethod says how ClientSecret travelled, MethodClientSecretBasic or MethodClientSecretPost
	// (the default); it is recorded on the credential.
	AuthMethod string
	// ClientCertificates is the client's TLS certificate chain, leaf first, as the connection
	// delivered it (http.Request.TLS.PeerCertificates); the handshake proved possession of the
	// leaf's key. It authenticates the client by tls_client_auth or self_signed_tls_client_auth
	// when the request carries no client assertion, and binds the token (cnf.x5t#S256) when the
	// integration's sender constraint asks for it.
	ClientCertificates []*x509.Certificate
	// DPoPProof is the raw DPoP header of the request (RFC 9449), if any: the token is then bound
	// to the proof's key (cnf.jkt) and of type DPoP.
	DPoPProof string
	// HTTPMethod and HTTPURL are the method and the URL (scheme, host, path; no query or
	// fragment) the token request was sent to, which a DPoP proof's htm and htu must name.
	HTTPMethod, HTTPURL string

	// authMethod is the client authentication method Issue authenticated the client by.
	authMethod string
	// parent is the verified subject token of a token exchange (see Exchange); nil for an
	// issuance.
	parent *parentToken
}

// Credential is an inventory record: everything about a minted credential but the token.
type Credential struct {
	// ID is the token's jti.
	ID            string
	WorkloadID    string
	IntegrationID string
	PartnerID     string
	// Scopes are the granted scopes, in request order, without duplicates.
	Scopes     []string
	Audience   string
	IssueTime  time.Time
	ExpireTime time.Time
	// Kid names the signing key.
	Kid string
	// Sequence is the feed sequence issuance was decided at (the tsq claim).
	Sequence uint64
	// Binding is what the token is bound to: BindingNone, BindingDPoP, BindingMTLS or
	// BindingDPoPMTLS.
	Binding string
	// AuthMethod is the client authentication method the workload used (MethodPrivateKeyJWT,
	// ...).
	AuthMethod string
	// ParentID is the jti of the token this one was exchanged from (RFC 8693); empty for an
	// issuance.
	ParentID string
	// BindingThumbprint is the binding's confirmation: cnf.jkt for DPoP (and dpop+mtls),
	// cnf.x5t#S256 for mTLS; empty for a bearer token.
	BindingThumbprint string
	// LastSeen is when a PDP last allowed a request with the credential, as PDPs report it in
	// batches (see ReportUsage); zero if none has. Only the inventory's reads set it.
	LastSeen time.Time
	// RevokedSequence is the feed sequence of the credential's revocation, once the issuer has
	// applied it from the feed (see WaitApplied); zero otherwise. Only the inventory's reads set
	// it. A revoked credential is not live.
	RevokedSequence uint64
}

// Issued is a minted credential.
type Issued struct {
	// Token is the signed JWT. A secret: never log it.
	Token string
	// TokenType is TokenTypeDPoP for a DPoP-bound token, else TokenTypeBearer.
	TokenType  string
	Credential Credential
}

// Issue authenticates the workload by its client assertion, checks the request against the
// registry and the PDP, mints a signed access token and records it in the inventory before
// returning it.
func (i *Issuer) Issue(ctx context.Context, req Request) (Issued, error) {
	if err := checkRequest(req); err != nil {
		return Issued{}, err
	}
	w, method, claim, err := i.authenticateClient(ctx, req)
	req.authMethod = method
	if err != nil {
		i.log.Info("issuer: client authentication failed", "err", err)
		return Issued{}, err
	}
	out, err := i.issue(ctx, w, req, claim)
	if err != nil {
		i.consume(claim) // the assertion stays single-use when issuance is refused too
		i.log.Info("issuer: issuance refused", "workload", w.ID, "err", err)
		return Issued{}, err
	}
	// The record's dozen fields are boxed for the logger only if it keeps info: with
	// --log-level warn they would be garbage made on every issuance.
	if c := out.Credential; i.log.Enabled(ctx, slog.LevelInfo) {
		i.log.Info("issuer: credential issued", "jti", c.ID, "workload", c.WorkloadID, "partner", c.PartnerID,
			"integration", c.IntegrationID, "scopes", c.Scopes, "audience", c.Audience,
			"expire_time", c.ExpireTime, "kid", c.Kid, "sequence", c.Sequence, "auth_method", c.AuthMethod, "binding", c.Binding)
	}
	return out, nil
}

func checkRequest(req Request) error {
	if len(req.Scopes) == 0 {
		return fail.Invalidf("scopes", "scopes: request at least one scope")
	}
	if len(req.Scopes) > maxScopes {
		return fail.Invalidf("scopes", "scopes: at most %d scopes per request", maxScopes)
	}
	for _, s := range req.Scopes {
		if !token.ValidScope(s) {
			if len(s) > token.MaxScopeLen {
				s = s[:token.MaxScopeLen] + "..." // quoted, not echoed in full: a request may hold megabytes here
			}
			return fail.Invalidf("scopes", "scopes: %q is not a valid scope token (1-%d printable ASCII characters, no spaces, quotes or backslashes)", s, token.MaxScopeLen)
		}
	}
	switch {
	case req.Audience == "":
		return fail.Invalidf("audience", "audience is required: the resource the credential is for")
	case len(req.Audience) > maxAudience:
		return fail.Invalidf("audience", "audience is longer than %d bytes", maxAudience)
	case req.TTL < 0:
		return fail.Invalidf("ttl", "ttl must not be negative")
	case req.TTL > 0 && req.TTL < time.Second:
		return fail.Invalidf("ttl", "ttl must be at least one second")
	}
	return nil
}

// issue runs every step after authentication; claim (nil if none) is recorded with the credential.
func (i *Issuer) issue(ctx context.Context, w Workload, req Request, claim *replayClaim) (Issued, error) {
	integ, partner, err := i.grant(ctx, w)
	if err != nil {
		return Issued{}, err
	}
	scopes, err := grantScopes(req.Scopes, integ)
	if err != nil {
		return Issued{}, err
	}
	if err := checkClientMethod(integ, req.authMethod); err != nil {
		return Issued{}, err
	}
	cnf, binding, err := i.bind(integ, req)
	if err != nil {
		return Issued{}, err
	}
	if !slices.Contains(integ.Audiences, req.Audience) {
		return Issued{}, Mark(fail.Deniedf("audience %q is not one integration %q lists", req.Audience, integ.ID), ErrInvalidTarget)
	}
	now := i.cfg.Now()
	iat, exp, err := i.lifetime(now, req.TTL, integ, partner)
	if err != nil {
		return Issued{}, err
	}
	if exp, err = req.parent.capExpiry(iat, exp); err != nil {
		return Issued{}, err
	}
	dec, key, err := i.authorize(ctx, w, scopes, req.Audience, req.MinSequence)
	if err != nil {
		return Issued{}, err
	}
	jti, err := newCredentialID(now)
	if err != nil {
		return Issued{}, err
	}
	claims := token.Claims{
		Issuer: i.cfg.IssuerURL, Subject: w.ID, ClientID: w.ID, Partner: w.PartnerID, Integration: w.IntegrationID,
		Scope: strings.Join(scopes, " "), Audience: req.Audience, IssuedAt: iat.Unix(), Expiry: exp.Unix(),
		ID: jti, Sequence: dec.Sequence, Epoch: dec.Epoch, Confirmation: cnf,
	}
	if err := req.parent.extend(&claims); err != nil {
		return Issued{}, err
	}
	raw, err := key.sign(ctx, claims)
	if err != nil {
		return Issued{}, fmt.Errorf("issuer: sign access token: %w", err)
	}
	cred := Credential{
		ID: jti, WorkloadID: w.ID, IntegrationID: w.IntegrationID, PartnerID: w.PartnerID, Scopes: scopes,
		Audience: req.Audience, IssueTime: iat, ExpireTime: exp, Kid: key.kid, Sequence: dec.Sequence,
		Binding: binding, AuthMethod: req.authMethod, BindingThumbprint: bindingThumbprint(cnf),
	}
	cred.ParentID = req.parent.id()
	if err := i.record(claim, cred); err != nil {
		return Issued{}, err
	}
	return Issued{Token: raw, TokenType: tokenType(binding), Credential: cred}, nil
}

// grant looks up the workload's integration and partner and checks that all three are active and
// the contract still runs.
func (i *Issuer) grant(ctx context.Context, w Workload) (Integration, Partner, error) {
	if !w.Active {
		return Integration{}, Partner{}, fail.Deniedf("workload %q is not active; no credentials are issued to it", w.ID)
	}
	integ, err := i.cfg.Directory.Integration(ctx, w.IntegrationID)
	if err != nil {
		return Integration{}, Partner{}, lookupError(err, "integration", w.IntegrationID)
	}
	if integ.PartnerID != w.PartnerID {
		return Integration{}, Partner{}, fmt.Errorf("issuer: registry inconsistency: workload %q names partner %q but its integration %q belongs to %q", w.ID, w.PartnerID, integ.ID, integ.PartnerID)
	}
	if !integ.Active {
		return Integration{}, Partner{}, fail.Deniedf("integration %q is not active; no credentials are issued under it", integ.ID)
	}
	partner, err := i.cfg.Directory.Partner(ctx, w.PartnerID)
	if err != nil {
		return Integration{}, Partner{}, lookupError(err, "partner", w.PartnerID)
	}
	switch {
	case !partner.Active:
		return Integration{}, Partner{}, fail.Deniedf("partner %q is not active (suspended or offboarded); no credentials are issued to it", partner.ID)
	case partner.ContractEnd.IsZero():
		return Integration{}, Partner{}, fail.Deniedf("partner %q has no contract end on record; no credentials are issued to it", partner.ID)
	case !i.cfg.Now().Before(partner.ContractEnd):
		return Integration{}, Partner{}, fail.Deniedf("the contract of partner %q ended at %s; no credentials are issued to it", partner.ID, partner.ContractEnd.UTC().Format(time.RFC3339))
	}
	return integ, partner, nil
}

func lookupError(err error, kind, id string) error {
	if fail.KindOf(err) == fail.NotFound {
		return fail.Deniedf("%s %q is not registered", kind, id)
	}
	return directoryError(err, fmt.Sprintf("%s %q", kind, id))
}

// grantScopes checks every requested scope against the integration's ceiling, refusing the
// request if any is outside, and drops duplicates, keeping the request order.
func grantScopes(requested []string, integ Integration) ([]string, error) {
	out := make([]string, 0, len(requested))
	for _, s := range requested {
		if !slices.Contains(integ.AllowedScopes, s) {
			return nil, Mark(fail.Deniedf("scope %q is outside the ceiling of integration %q", s, integ.ID), ErrInvalidScope)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// lifetime returns the credential's iat and exp, whole seconds: the requested lifetime (default
// DefaultTTL) capped by the integration, the deployment and the partner's contract end.
func (i *Issuer) lifetime(now time.Time, requested time.Duration, integ Integration, partner Partner) (time.Time, time.Time, error) {
	ttl := requested
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if integ.MaxTTL > 0 {
		ttl = min(ttl, integ.MaxTTL)
	}
	ttl = min(ttl, i.cfg.MaxCredentialTTL)
	iat := now.UTC().Truncate(time.Second)
	exp := iat.Add(ttl).Truncate(time.Second)
	if end := partner.ContractEnd.UTC().Truncate(time.Second); exp.After(end) {
		exp = end // exp is exclusive, like the contract end
	}
	if !exp.After(iat) {
		return time.Time{}, time.Time{}, fail.Deniedf("the contract of partner %q ends in less than a second; no credentials are issued to it", partner.ID)
	}
	return iat, exp, nil
}

// authorize asks the PDP whether the credential may be minted and returns the decision with the
// key to sign with. If the PDP reports the active key revoked, the issuer rotates to a new key and
// asks once more. If the PDP does not know yet what the registry just confirmed, it asks again for
// a little while.
func (i *Issuer) authorize(ctx context.Context, w Workload, scopes []string, aud string, minSeq uint64) (IssuanceDecision, *signer, error) {
	key := i.active.Load()
	lagWait, lagged, rotated := lagFirstWait, 0, false
	for {
		published, err := key.waitPublished(ctx)
		if err != nil {
			return IssuanceDecision{}, nil, err
		}
		req := IssuanceRequest{WorkloadID: w.ID, Scopes: scopes, Audience: aud, Kid: key.kid, MinSequence: max(minSeq, published)}
		dec, err := i.cfg.Authorizer.AuthorizeIssuance(ctx, req)
		if err != nil {
			return IssuanceDecision{}, nil, unavailable(err, "the decision point could not decide (unreachable, or still catching up with the feed); retry shortly")
		}
		if dec.Allow {
			if dec.Sequence < req.MinSequence {
				return IssuanceDecision{}, nil, fail.Unavailablef(errors.New("decision behind min sequence"),
					"the decision point answered at feed sequence %d, before %d; retry", dec.Sequence, req.MinSequence)
			}
			return dec, key, nil
		}
		switch {
		case slices.Contains(dec.Reasons, reasonKeyRevoked) && !rotated:
			rotated = true
			if key, err = i.rotate(key.kid); err != nil {
				return IssuanceDecision{}, nil, err
			}
		case slices.Contains(dec.Reasons, reasonKeyRevoked):
			return IssuanceDecision{}, nil, fail.Unavailablef(errors.New("key revoked after rotation"),
				"the issuer's new signing key %s was reported revoked too; retry", key.kid)
		case slices.ContainsFunc(dec.Reasons, func(r string) bool { return slices.Contains(laggingReasons, r) }):
			if lagged == lagRetries {
				return IssuanceDecision{}, nil, fail.Unavailablef(fmt.Errorf("decision point reasons %v", dec.Reasons),
					"the decision point has not caught up with the registry yet; retry shortly")
			}
			lagged++
			select {
			case <-ctx.Done():
				return IssuanceDecision{}, nil, unavailable(ctx.Err(), "the decision point has not caught up with the registry yet; retry shortly")
			case <-time.After(lagWait):
			}
			lagWait *= 2
		case slices.Contains(dec.Reasons, reasonSyncing) || slices.Contains(dec.Reasons, reasonStale):
			return IssuanceDecision{}, nil, fail.Unavailablef(fmt.Errorf("decision point reasons %v", dec.Reasons),
				"the decision point is catching up; retry")
		default:
			reasons := strings.Join(dec.Reasons, ", ")
			if reasons == "" {
				reasons = "no reason given"
			}
			return IssuanceDecision{}, nil, fail.Deniedf("issuance denied: %s", reasons)
		}
	}
}
