package pdpsvc

import (
	"context"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// NewAuthorizer returns the issuer's Authorizer over a DecisionService connection. A deny is a
// decision, not an error; errors are the PDP's (edge.FromStatus turns them back into fail kinds:
// Invalid for a malformed request, Unavailable for an unmet min_sequence or an unreachable PDP).
func NewAuthorizer(conn grpc.ClientConnInterface) issuer.Authorizer {
	return &authorizer{client: treatyv1.NewDecisionServiceClient(conn)}
}

type authorizer struct {
	client treatyv1.DecisionServiceClient
}

func (a *authorizer) AuthorizeIssuance(ctx context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	resp, err := a.client.CheckIssuance(ctx, &treatyv1.CheckIssuanceRequest{
		WorkloadId: req.WorkloadID, Scopes: req.Scopes, Audience: req.Audience, Kid: req.Kid, MinSequence: req.MinSequence,
	})
	if err != nil {
		return issuer.IssuanceDecision{}, edge.FromStatus(err)
	}
	return issuer.IssuanceDecision{
		// Anything but an explicit allow (an unset decision from a broken peer) is a deny.
		Allow:      resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW,
		Reasons:    resp.GetReasons(),
		DecisionID: resp.GetDecisionId(),
		Sequence:   resp.GetSequence(),
		Epoch:      resp.GetEpoch(),
	}, nil
}
