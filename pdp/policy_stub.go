package pdp

import "github.com/treaty-dev/treaty/feed"

// This file stands in for pdp/policy.go (Cedar policies), which is written on another branch, so
// that the decision path builds and is measured here. Delete it when policy.go is merged: the two
// define the same names on purpose, so a merge that keeps both does not compile.

// policyQuery is what partner policies decide on.
type policyQuery struct {
	Partner, Integration, Workload string
	Req                            *CheckRequest
}

// evaluatePolicies returns the reasons of a policy deny, or nil. Without policies nothing denies.
func (p *PDP) evaluatePolicies(s *feed.State, q *policyQuery, d *Decision) []string { return nil }
