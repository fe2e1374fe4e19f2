package pdp

import "github.com/treaty-dev/treaty/feed"

// policyQuery is what a partner's Cedar policies decide on, once every built-in check (the
// grants) has passed.
type policyQuery struct {
	Partner, Integration, Workload string
	Req                            *CheckRequest
}

// evaluatePolicies runs the partner's live policy set (and its shadow set, beside it) on q. It
// returns nil when the policies allow, or the deny's reasons (shared, read-only); it sets
// d.PolicyID when the partner has a live set.
//
// Placeholder until policies reach the feed: no partner has policies yet, so the grants decide.
func (p *PDP) evaluatePolicies(s *feed.State, q *policyQuery, d *Decision) []string {
	return nil
}
