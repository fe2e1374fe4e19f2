package pdp

import (
	"sync/atomic"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/policy"
)

// policyQuery is what a partner's Cedar policies decide on, once every built-in check (the
// grants) has passed.
// The request's fields are copied in rather than pointed to: a pointer would make every
// CheckRequest escape to the heap through the policy input, and the grant path allocate.
type policyQuery struct {
	Partner, Integration, Workload string
	Action, Resource               string
	Properties                     map[string]any
	Context                        RequestContext
}

// policyStats counts what the PDP's policy evaluation saw.
type policyStats struct {
	shadowDisagreements atomic.Uint64
}

// ShadowDisagreements returns how many decisions a partner's shadow policy set would have
// answered differently (allow versus deny) from its live set, since the PDP started.
func (p *PDP) ShadowDisagreements() uint64 { return p.policies.shadowDisagreements.Load() }

// evaluatePolicies runs the partner's live policy set (and its shadow set, beside it) on q. It
// returns nil when the policies allow, or the deny's reasons (shared, read-only); it sets
// d.PolicyID when the partner has a live set.
//
// A partner without policies costs one map lookup: the grants decide. The sets were compiled when
// the feed delivered them, so nothing is parsed here. A shadow set never changes the answer; a
// disagreement is counted and logged.
func (p *PDP) evaluatePolicies(s *feed.State, q *policyQuery, d *Decision) []string {
	ps, ok := s.Policies(q.Partner)
	if !ok {
		return nil
	}
	in := &policy.Input{
		Partner: q.Partner, Integration: q.Integration, Workload: q.Workload,
		Action: q.Action, Resource: q.Resource, Properties: q.Properties,
		SourceIP: q.Context.SourceIP, Environment: q.Context.Environment, Now: p.cfg.Now(),
	}
	live := ps.Live.Evaluate(in) // a nil live set (shadow only) allows: the grants decide
	d.PolicyID = ps.LiveID
	if ps.Shadow != nil {
		shadow := ps.Shadow.Evaluate(in)
		if shadow.Allow != live.Allow {
			p.policies.shadowDisagreements.Add(1)
			p.log.Info("shadow policy disagrees with live policy",
				"partner", q.Partner, "integration", q.Integration, "workload", q.Workload,
				"action", q.Action, "resource", q.Resource,
				"live_policy", ps.LiveID, "live_allow", live.Allow, "live_reasons", live.Reasons,
				"shadow_policy", ps.ShadowID, "shadow_allow", shadow.Allow, "shadow_reasons", shadow.Reasons)
		}
	}
	if !live.Allow {
		return live.Reasons
	}
	return nil
}
