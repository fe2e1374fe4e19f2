package pdp

import (
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/token"
)

// A token minted by token exchange (RFC 8693) derives its authority from its ancestors: the
// tokens it was exchanged from, listed in its anc claim, and the workloads that exchanged them,
// nested in its act claim. It is dead as soon as any of them is, so that revoking a token (or
// blocking the workload it was issued to) also kills everything exchanged from it, whoever holds
// that now:
//   - an ancestor's jti revoked, or the key that signed an ancestor revoked: parent_revoked;
//   - a watermark (global, or of the partner, integration or any workload in the chain) above the
//     lowest tsq in the chain: the chain is as old as its oldest token (token.ChainSequence);
//   - the subject's or any actor's workload blocked, restored after that tsq, inactive, or not in
//     the token's partner and integration: the usual workload reasons.
// Every check walks the claims already decoded, so none allocates.

// chainReason checks an exchanged token's chain on s: its shape (one act level per ancestor, at
// most token.MaxExchangeDepth) and that no ancestor's jti or signing key is revoked. A token
// never exchanged passes at once.
func chainReason(s *feed.State, c *token.Claims) string {
	if c.Actor == nil && len(c.Ancestors) == 0 {
		return ""
	}
	if len(c.Ancestors) > token.MaxExchangeDepth || c.ActorDepth() != len(c.Ancestors) {
		return ReasonMalformedToken // signed by us, yet not a chain we mint
	}
	for i := range c.Ancestors {
		a := &c.Ancestors[i]
		if a.ID == "" || a.KeyID == "" || a.Sequence == 0 {
			return ReasonMalformedToken
		}
		if _, revoked := s.RevokedCredential(a.ID); revoked {
			return ReasonParentRevoked
		}
		// A retired key stays in the feed at least as long as the ancestor it signed lives, and an
		// exchanged token never outlives its parent: a revocation is what to expect here, and a key
		// the feed does not know cannot vouch for the ancestor.
		k, ok := s.SigningKey(a.KeyID)
		if !ok {
			return ReasonUnknownKey
		}
		if k.Revoked() {
			return ReasonParentRevoked
		}
	}
	return ""
}

// actorsReason checks every actor workload of an exchanged token as the subject's workload is
// checked: kill switch against tsq (the chain's), then lifecycle, then membership of the token's
// partner and integration.
func actorsReason(s *feed.State, c *token.Claims, tsq uint64) string {
	for a := c.Actor; a != nil; a = a.Actor {
		w, ok := s.Workload(a.Subject)
		if !ok || w.State == treatyv1.WorkloadState_WORKLOAD_STATE_UNSPECIFIED {
			if ok && w.Block != nil {
				return ReasonWorkloadBlocked
			}
			return ReasonWorkloadUnknown
		}
		if r := controlReason(&w.Control, tsq, ReasonWorkloadBlocked, ReasonWorkloadRevoked); r != "" {
			return r
		}
		if w.State != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE {
			return ReasonWorkloadInactive
		}
		if w.PartnerID != c.Partner || w.IntegrationID != c.Integration {
			return ReasonSubjectMismatch
		}
	}
	return ""
}
