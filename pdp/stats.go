package pdp

import (
	"sync/atomic"
	"time"
)

// Decision counters are plain atomics indexed by reason, so that counting a decision is one atomic
// add and no lookup by label: the decision path must not allocate. Monitoring reads them through
// DecisionCounts when it is scraped.

// Indexes of the decision counters beyond the built-in reasons (whose index is their position in
// allReasons).
var (
	grantedIndex = reasons[ReasonGranted].index
	policyIndex  = len(allReasons)     // a partner policy's deny
	unknownIndex = len(allReasons) + 1 // a reason missing from allReasons: a bug, but counted
)

// Kinds of decision, as DecisionCount.Kind names them.
const (
	KindCheck    = "check"    // Check, CheckBatch (and everything built on them)
	KindIssuance = "issuance" // CheckIssuance
)

// ReasonPolicy is the reason DecisionCount gives a partner policy's deny, whose decisions name
// the policy instead (policy_forbid:... and so on): one series for them all keeps the counters'
// number bounded.
const ReasonPolicy = "policy"

// ReasonUnknown is the reason DecisionCount gives a decision whose reason is not a built-in one;
// it stays zero unless a check returns a reason missing from Reasons.
const ReasonUnknown = "unknown"

// counters counts decisions by reason index.
type counters []atomic.Uint64

func newCounters() counters { return make(counters, len(allReasons)+2) }

func (c counters) add(i int) { c[i].Add(1) }

func indexOf(e reasonEntry, ok bool) int {
	if !ok {
		return unknownIndex
	}
	return e.index
}

// stats is what the PDP counts for monitoring.
type stats struct {
	checks, issuances counters
	contact           atomic.Int64 // monotonic nanoseconds since start of the last message from the feed; 0: none yet
}

// DecisionCount is how many decisions of one kind were made for one reason since the PDP started.
type DecisionCount struct {
	// Kind is KindCheck or KindIssuance.
	Kind string
	// Reason is a built-in reason (see Reasons), ReasonPolicy or ReasonUnknown.
	Reason string
	// Allow is whether decisions for this reason allow (only ReasonGranted does).
	Allow bool
	// Count is how many were made.
	Count uint64
}

// DecisionCounts returns the decision counters: one entry per kind and built-in reason (zero
// counts included, so that every series exists from the start), plus ReasonPolicy and, when not
// zero, ReasonUnknown.
func (p *PDP) DecisionCounts() []DecisionCount {
	out := make([]DecisionCount, 0, 2*(len(allReasons)+2))
	for _, k := range []struct {
		kind string
		c    counters
	}{{KindCheck, p.stats.checks}, {KindIssuance, p.stats.issuances}} {
		for i, r := range allReasons {
			out = append(out, DecisionCount{Kind: k.kind, Reason: r, Allow: r == ReasonGranted, Count: k.c[i].Load()})
		}
		out = append(out, DecisionCount{Kind: k.kind, Reason: ReasonPolicy, Count: k.c[policyIndex].Load()})
		if n := k.c[unknownIndex].Load(); n > 0 {
			out = append(out, DecisionCount{Kind: k.kind, Reason: ReasonUnknown, Count: n})
		}
	}
	return out
}

// Stats is where the PDP stands, for monitoring.
type Stats struct {
	// Status is the sync status.
	Status Status
	// Epoch is the epoch of the state decisions are made on.
	Epoch string
	// Applied is the last feed sequence applied to that state; Head is the head the revoker
	// announced in the latest heartbeat (zero before the first). Head - Applied is the feed lag.
	Applied, Head uint64
	// SinceContact is how long ago the feed last sent anything (an event or a heartbeat); it is
	// meaningless while Contacted is false (nothing received since the PDP started).
	SinceContact time.Duration
	Contacted    bool
	// Partners, Integrations, Workloads, SigningKeys and RevokedCredentials count the records of
	// the state decisions are made on.
	Partners, Integrations, Workloads, SigningKeys, RevokedCredentials int
	// ShadowDisagreements is ShadowDisagreements().
	ShadowDisagreements uint64
}

// Lag returns how many events the state is behind the announced head (zero when caught up or
// when the state is ahead of an old heartbeat).
func (s Stats) Lag() uint64 {
	if s.Head <= s.Applied {
		return 0
	}
	return s.Head - s.Applied
}

// Stats returns where the PDP stands. It reads atomics and the current state only; it never waits.
func (p *PDP) Stats() Stats {
	st := p.state.Load()
	out := Stats{Status: p.Status(), Epoch: st.Epoch(), Applied: st.Sequence(), Head: p.Head(), ShadowDisagreements: p.ShadowDisagreements()}
	if at := p.stats.contact.Load(); at != 0 {
		out.Contacted = true
		out.SinceContact = time.Duration(p.monotonic() - at)
	}
	out.Partners, out.Integrations, out.Workloads, out.SigningKeys, out.RevokedCredentials = st.Counts()
	return out
}
