package pdpsvc

import (
	"context"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// The issuer's Authorizer is also its issuer.TokenChecker, so that the issuer can have the PDP
// confirm a subject token is live before exchanging it (RFC 8693).
var _ issuer.TokenChecker = (*authorizer)(nil)

// CheckToken asks the PDP's Check whether the token may perform the action on the resource now. A
// deny is a decision, not an error.
func (a *authorizer) CheckToken(ctx context.Context, req issuer.TokenCheck) (issuer.IssuanceDecision, error) {
	resp, err := a.client.Check(ctx, tokenCheckWire(req))
	if err != nil {
		return issuer.IssuanceDecision{}, edge.FromStatus(err)
	}
	return decisionFromWire(resp), nil
}
