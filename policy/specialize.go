package policy

import (
	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// specialize returns p as it reads for a request of the set's own partner, with what Treaty's
// entity model already decides taken out, so that cedar-go does not look it up on every decision.
// The principal is always a workload whose parents are its integration and its partner
// (validation refuses any other partner), so for a request of partner, the scopes
// `principal in Partner::"<partner>"` and `principal is T in Partner::"<partner>"` are
// `principal` and `principal is T`. Neither can error, so errors, matches and reasons are the
// same; Evaluate uses the specialized policies only when the request's partner is the set's.
// A policy with nothing to take out is returned as it is.
func specialize(p *cedar.Policy, partner string) *cedar.Policy {
	a := (*xast.Policy)(p.AST())
	own := types.EntityUID{Type: typePartner, ID: types.String(partner)}
	var principal xast.IsPrincipalScopeNode
	switch s := a.Principal.(type) {
	case xast.ScopeTypeIn:
		if s.Entity != own {
			return p
		}
		principal = xast.ScopeTypeAll{}
	case xast.ScopeTypeIsIn:
		if s.Entity != own {
			return p
		}
		principal = xast.ScopeTypeIs{Type: s.Type}
	default:
		return p
	}
	c := *a
	c.Principal = principal
	return cedar.NewPolicyFromAST((*ast.Policy)(&c))
}
