package pdp

import (
	"strings"
	"time"

	"github.com/treaty-dev/treaty/feed"
)

// grantMemo is what a grant of a cached token established about the state it was made on: on that
// state (and no other), every check that depends on the state and the token alone passed: the
// signing key is live and the one the token was verified with, the issuer is the key's, the epoch
// is the feed's, the tsq is applied, the jti is not revoked, no block or watermark of the partner,
// integration or workload denies, their lifecycle states are active, the workload belongs to the
// token's integration and partner, and the integration lists the token's audience. Those checks
// are what costs a scattered decision its time: each is a lookup by string id in a map of tens of
// thousands of records, a likely cache miss.
//
// A memo is immutable, and hangs off its cache entry by an atomic pointer: a decision on another
// state never uses it (any feed event swaps the state, and a new state has a new feed.State.ID), so
// it can never outlive a revocation, block or change of ceiling. It remembers the state's ID, not
// the state, so an idle token's memo keeps no old state alive. A decision that finds no memo for
// its state takes the full path, and a grant there makes the memo: one allocation per entry per
// state, never in the steady state.
//
// What depends on the clock or the request is still checked on every decision: exp, iat skew and
// the contract's end against now; the action against the token's scopes and (through scopes) the
// integration's ceiling; the resource against the audience; the subject the request names.
type grantMemo struct {
	stateID uint64
	// grants is false when the memo cannot grant alone: the partner has policies (Cedar decides
	// per request), or the token is sender-constrained (its proof is checked per request). Such a
	// token takes the full path on every decision, without making a new memo.
	grants bool
	// scopes has bit i set when the token's i-th scope (as token.Claims.HasScope walks them) is
	// inside the integration's ceiling on the state. Scopes past the 64th never grant here.
	scopes uint64
	// contractEnd is the partner's on the state.
	contractEnd time.Time
}

// maxMemoScopes is how many of a token's scopes a memo records.
const maxMemoScopes = 64

// memoGrant reports whether the memo m, made for cached entry e on the state the decision is
// made on, grants req at now. It returns false for anything else; the full path then decides, and
// names the reason.
func memoGrant(m *grantMemo, e *verified, req *CheckRequest, now time.Time) bool {
	c := &e.claims
	if !m.grants || c.Expiry <= now.Unix() || c.IssuedAt > now.Add(MaxClockSkew).Unix() || !now.Before(m.contractEnd) ||
		req.Resource != c.Audience || (req.WorkloadID != "" && req.WorkloadID != c.Subject) {
		return false
	}
	i := scopeIndex(c.Scope, req.Action)
	return i >= 0 && i < maxMemoScopes && m.scopes&(1<<i) != 0
}

// scopeIndex returns the index of scope among the space-delimited scopes, walked as
// token.Claims.HasScope walks them, or -1.
func scopeIndex(scopes, scope string) int {
	for i := 0; scopes != ""; i++ {
		var s string
		s, scopes, _ = strings.Cut(scopes, " ")
		if s == scope {
			return i
		}
	}
	return -1
}

// memoize records, after the full path granted cached entry e on state s, what that grant
// established (see grantMemo). old is the memo the decision found (nil or another state's): if
// another decision replaced it meanwhile, this one leaves that alone.
func memoize(s *feed.State, e *verified, old *grantMemo) {
	c := &e.claims
	m := &grantMemo{stateID: s.ID()}
	partner, hasPartner := s.Partner(c.Partner)
	integration, hasIntegration := s.Integration(c.Integration)
	_, hasPolicies := s.Policies(c.Partner)
	if hasPartner && hasIntegration && !hasPolicies && c.Confirmation == nil {
		m.grants = true
		m.contractEnd = partner.ContractEnd
		rest := c.Scope
		for i := 0; rest != "" && i < maxMemoScopes; i++ {
			var scope string
			scope, rest, _ = strings.Cut(rest, " ")
			if integration.AllowsScope(scope) {
				m.scopes |= 1 << i
			}
		}
	}
	e.memo.CompareAndSwap(old, m)
}
