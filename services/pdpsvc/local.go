package pdpsvc

import (
	"context"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/pdp"
)

// NewLocalAuthorizer returns the issuer's Authorizer (and TokenChecker) over a PDP in the same
// process: the same decisions as NewAuthorizer gives over gRPC, without a loopback round trip
// on every issuance. The server assembly uses it when the issuer and the PDP run together.
func NewLocalAuthorizer(p *pdp.PDP) issuer.Authorizer { return local{p} }

type local struct{ p *pdp.PDP }

var _ issuer.TokenChecker = local{}

// Requests are validated as the service edge validates them, so both adapters refuse the same.

func (l local) AuthorizeIssuance(ctx context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	if err := validateIssuance(issuanceWire(req)); err != nil {
		return issuer.IssuanceDecision{}, err
	}
	d, err := l.p.CheckIssuance(ctx, pdp.IssuanceRequest{
		WorkloadID: req.WorkloadID, Scopes: req.Scopes, Audience: req.Audience, Kid: req.Kid, MinSequence: req.MinSequence,
	})
	if err != nil {
		return issuer.IssuanceDecision{}, err
	}
	return issuanceDecision(d), nil
}

func (l local) CheckToken(ctx context.Context, req issuer.TokenCheck) (issuer.IssuanceDecision, error) {
	if err := validateCheck("", tokenCheckWire(req)); err != nil {
		return issuer.IssuanceDecision{}, err
	}
	d, err := l.p.Check(ctx, pdp.CheckRequest{Token: req.Token, Action: req.Action, Resource: req.Resource, MinSequence: req.MinSequence})
	if err != nil {
		return issuer.IssuanceDecision{}, err
	}
	return issuanceDecision(d), nil
}

func issuanceDecision(d pdp.Decision) issuer.IssuanceDecision {
	return issuer.IssuanceDecision{
		Allow: d.Allow, Reasons: d.Reasons, DecisionID: d.DecisionID.String(), Sequence: d.Sequence, Epoch: d.Epoch,
	}
}
