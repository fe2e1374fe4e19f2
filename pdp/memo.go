package pdp

import (
	"math"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/feed"
)

// grantMemo is what a grant of a cached token established about the state it was made on: on that
// state (and no other), every check that depends on the state and the token alone passed: the
// signing key is live and the one the token was verified with, the issuer is the key's, the epoch
// is the feed's, the tsq is applied and not below the global watermark, the jti is not revoked, no
// block or watermark of the partner, integration or workload denies, their lifecycle states are
// active, the workload belongs to the token's integration and partner, and the integration lists
// the token's audience. Those checks
// are what costs a scattered decision its time: each is a lookup by string id in a map of tens of
// thousands of records, a likely cache miss.
//
// A memo is used only on the state it was made on: any feed event swaps the state, and a new state
// has a new feed.State.ID, so a memo can never outlive a revocation, block or change of ceiling. It
// remembers the state's ID, not the state, so an idle token's memo keeps no old state alive. A
// decision that finds no memo for its state takes the full path, and a grant there writes the memo.
//
// What depends on the clock or the request is still checked on every decision: exp, iat skew and
// the contract's end against now; the action against the token's scopes and (through scopes) the
// integration's ceiling; the resource against the audience; the subject the request names.
type grantMemo struct {
	stateID uint64
	// scopes has bit i set when the token's i-th scope (as token.Claims.HasScope walks them) is
	// inside the integration's ceiling on the state. Scopes past the 64th never grant here. It is
	// zero when the memo cannot grant alone: the partner has policies (Cedar decides per request),
	// or the token is sender-constrained (its proof is checked per request).
	scopes uint64
	// contractEnd is the partner's, in Unix nanoseconds, clamped to the int64 range.
	contractEnd int64
}

// The memo lives in its cache entry (verified), in its first cache line, rather than behind a
// pointer: a pointer would cost a scattered decision one more dependent cache miss, and every state
// change one allocation per token. Its words are written under a sequence counter (a seqlock of
// atomics, so race-free): memoSeq is odd while a writer writes, and a reader that sees it change,
// or odd, takes the full path.

// loadMemo returns the entry's memo, or the zero memo (whose state ID no state has) if there is
// none or a writer is writing it.
func (e *verified) loadMemo() grantMemo {
	v := e.memoSeq.Load()
	if v&1 != 0 {
		return grantMemo{}
	}
	m := grantMemo{stateID: e.memoState.Load(), scopes: e.memoScopes.Load(), contractEnd: e.memoEnd.Load()}
	if e.memoSeq.Load() != v {
		return grantMemo{}
	}
	return m
}

// storeMemo writes the entry's memo, unless another decision is writing it: that one's will do.
func (e *verified) storeMemo(m grantMemo) {
	v := e.memoSeq.Load()
	if v&1 != 0 || !e.memoSeq.CompareAndSwap(v, v+1) {
		return
	}
	e.memoState.Store(m.stateID)
	e.memoScopes.Store(m.scopes)
	e.memoEnd.Store(m.contractEnd)
	e.memoSeq.Store(v + 2)
}

// maxMemoScopes is how many of a token's scopes a memo records; the scopes word's top bit is
// memoEnvironment.
const maxMemoScopes = 63

// memoEnvironment, in a memo's scopes word, says that the integration names an environment and the
// PDP has none configured: the request context's environment then decides per request, so a
// request that carries one takes the full path.
const memoEnvironment = 1 << 63

// memoGrant reports whether the memo m, made for cached entry e on the state the decision is
// made on, grants req at now. It returns false for anything else; the full path then decides, and
// names the reason.
func memoGrant(m grantMemo, e *verified, req *CheckRequest, now time.Time) bool {
	c := &e.claims
	if m.scopes == 0 || c.Expiry <= now.Unix() || c.IssuedAt > now.Add(MaxClockSkew).Unix() || now.UnixNano() >= m.contractEnd ||
		!e.audienceIs(req.Resource) || (req.WorkloadID != "" && req.WorkloadID != c.Presenter()) {
		return false
	}
	if m.scopes&memoEnvironment != 0 && req.Context.Environment != "" {
		return false
	}
	i := e.scopeIndex(req.Action)
	return i >= 0 && i < maxMemoScopes && m.scopes&(1<<i) != 0
}

// memoize writes, after the full path granted cached entry e on state s, what that grant
// established (see grantMemo); env is the PDP's configured environment. An integration with
// source ranges gets no memo that grants: the source address is the request's.
func memoize(s *feed.State, e *verified, env string) {
	c := &e.claims
	m := grantMemo{stateID: s.ID()}
	partner, hasPartner := s.Partner(c.Partner)
	integration, hasIntegration := s.Integration(c.Integration)
	_, hasPolicies := s.Policies(c.Partner)
	if hasPartner && hasIntegration && !hasPolicies && c.Confirmation == nil && len(integration.SourceRanges) == 0 {
		if env == "" && integration.Environment != "" {
			m.scopes |= memoEnvironment
		}
		m.contractEnd = unixNanos(partner.ContractEnd)
		rest := c.Scope
		for i := 0; rest != "" && i < maxMemoScopes; i++ {
			var scope string
			scope, rest, _ = strings.Cut(rest, " ")
			if integration.AllowsScope(scope) {
				m.scopes |= 1 << i
			}
		}
	}
	e.storeMemo(m)
}

// unixNanos returns t in Unix nanoseconds, clamped to the int64 range: for any now inside that
// range (years 1678 to 2262), now.Before(t) is exactly now.UnixNano() < unixNanos(t). The zero
// time (a partner with no contract end yet) is before every now.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}
