package pdpsvc

import (
	"context"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// The issuer's Authorizer is also its issuer.TokenChecker, so that the issuer can have the PDP
// confirm a subject token is live before exchanging it (RFC 8693).
var _ issuer.TokenChecker = (*authorizer)(nil)

// CheckToken asks the PDP's Check whether the token may perform the action on the resource now. A
// deny is a decision, not an error.
func (a *authorizer) CheckToken(ctx context.Context, req issuer.TokenCheck) (issuer.IssuanceDecision, error) {
	resp, err := a.client.Check(ctx, &treatyv1.CheckRequest{
		Subject: &treatyv1.CheckRequest_Token{Token: req.Token}, Action: req.Action, Resource: req.Resource,
		MinSequence: req.MinSequence,
	})
	if err != nil {
		return issuer.IssuanceDecision{}, edge.FromStatus(err)
	}
	return issuer.IssuanceDecision{
		Allow:      resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW,
		Reasons:    resp.GetReasons(),
		DecisionID: resp.GetDecisionId(),
		Sequence:   resp.GetSequence(),
		Epoch:      resp.GetEpoch(),
	}, nil
}
