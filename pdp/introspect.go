package pdp

import (
	"context"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// Introspection is the PDP's view of a token on its own, without an action or a resource: what an
// RFC 7662 introspection endpoint answers.
type Introspection struct {
	// Active says the token is valid now: its signature verifies with a live key, it is inside its
	// validity window, not revoked, not under a block or watermark, and its workload, integration
	// and partner are active inside the contract. Scopes, audience, proof of possession and
	// policies are the resource server's to check for each request (the cnf claim is returned).
	Active bool
	// Reason is the first check that failed, as in decisions; ReasonGranted when Active.
	Reason string
	// Claims are the verified claims; set whenever the signature verified, even if not Active
	// (the caller decides how much of an inactive token to reveal: RFC 7662 reveals nothing).
	Claims *token.Claims
	// KeyID names the key that signed the token, when known.
	KeyID string
	// Sequence is the feed sequence the answer was given at.
	Sequence uint64
}

// Introspect verifies a raw access token and checks everything about it that does not depend on
// a request: the credential checks of Check up to the subject's consistency. It shares the
// verified-token cache with Check but never touches the decision path (check.go), so Check stays
// allocation-free. While the PDP is not ready it answers Unavailable: "not active" would be a lie
// the caller might act on.
func (p *PDP) Introspect(ctx context.Context, raw string) (Introspection, error) {
	if r := p.notReady(); r != "" {
		return Introspection{}, fail.Unavailablef(nil, "the decision point is %s; retry shortly", r)
	}
	s, err := p.stateAt(ctx, 0)
	if err != nil {
		return Introspection{}, err
	}
	in := p.introspect(s, raw)
	if in.Reason == ReasonSequenceAhead {
		// Issued at a sequence this PDP has not applied yet: wait briefly, as Check does.
		wctx, cancel := context.WithTimeout(ctx, maxSequenceAheadWait)
		later, err := p.stateAt(wctx, in.Claims.Sequence)
		cancel()
		if err == nil {
			in = p.introspect(later, raw)
		}
	}
	in.Active = in.Reason == ReasonGranted
	return in, nil
}

func (p *PDP) introspect(s *feed.State, raw string) Introspection {
	in := Introspection{Sequence: s.Sequence()}
	now := p.cfg.Now()
	e, _, c, key, r := p.verifyToken(s, raw, now.Unix())
	if r != "" {
		in.Reason = r
		return in
	}
	claims := *c
	in.Claims = &claims
	if key == nil { // verifyToken vouched for the cached entry's key on s without looking it up
		if key, r = signingKey(s, e.kid); r != "" {
			in.Reason = r
			return in
		}
	}
	in.KeyID = key.Kid
	in.Reason = credentialState(s, &claims, key, now)
	return in
}

// credentialState runs the request-independent credential checks of checkCredential, in its
// order, and returns the first that fails or ReasonGranted. Keep the two in step.
func credentialState(s *feed.State, c *token.Claims, key *feed.SigningKey, now time.Time) string {
	switch {
	case c.Issuer != key.Issuer:
		return ReasonWrongIssuer
	case c.Expiry <= now.Unix():
		return ReasonExpired
	case c.IssuedAt > now.Add(MaxClockSkew).Unix():
		return ReasonNotYetValid
	case c.Epoch != s.Epoch():
		return ReasonEpochMismatch
	case c.Sequence > s.Sequence():
		return ReasonSequenceAhead
	case c.Sequence < s.GlobalWatermark():
		return ReasonRevokedGlobal
	}
	if _, revoked := s.RevokedCredential(c.ID); revoked {
		return ReasonRevoked
	}
	partner, hasPartner := s.Partner(c.Partner)
	integration, hasIntegration := s.Integration(c.Integration)
	workload, hasWorkload := s.Workload(c.Subject)
	if hasPartner {
		if r := controlReason(&partner.Control, c.Sequence, ReasonPartnerBlocked, ReasonPartnerRevoked); r != "" {
			return r
		}
	}
	if hasIntegration {
		if r := controlReason(&integration.Control, c.Sequence, ReasonIntegrationBlocked, ReasonIntegrationRevoked); r != "" {
			return r
		}
	}
	if hasWorkload {
		if r := controlReason(&workload.Control, c.Sequence, ReasonWorkloadBlocked, ReasonWorkloadRevoked); r != "" {
			return r
		}
	}
	if r := lifecycleReason(partner, integration, workload, now); r != "" {
		return r
	}
	if workload.PartnerID != c.Partner || workload.IntegrationID != c.Integration || integration.PartnerID != c.Partner ||
		(c.ClientID != "" && c.ClientID != c.Subject) {
		return ReasonSubjectMismatch
	}
	return ReasonGranted
}
