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
	resp, err := a.client.CheckIssuance(ctx, issuanceWire(req))
	if err != nil {
		return issuer.IssuanceDecision{}, edge.FromStatus(err)
	}
	return decisionFromWire(resp), nil
}

// issuanceWire is the issuer's question as the DecisionService takes it.
func issuanceWire(req issuer.IssuanceRequest) *treatyv1.CheckIssuanceRequest {
	return &treatyv1.CheckIssuanceRequest{
		WorkloadId: req.WorkloadID, Scopes: req.Scopes, Audience: req.Audience, Kid: req.Kid, MinSequence: req.MinSequence,
	}
}

// tokenCheckWire is a token check as the DecisionService takes it.
func tokenCheckWire(req issuer.TokenCheck) *treatyv1.CheckRequest {
	return &treatyv1.CheckRequest{
		Subject: &treatyv1.CheckRequest_Token{Token: req.Token}, Action: req.Action, Resource: req.Resource, MinSequence: req.MinSequence,
	}
}

// decisionFromWire converts the PDP's answer, to an issuance or a token check, for the issuer.
func decisionFromWire(resp interface {
	GetDecision() treatyv1.Decision
	GetReasons() []string
	GetDecisionId() string
	GetSequence() uint64
	GetEpoch() string
}) issuer.IssuanceDecision {
	return issuer.IssuanceDecision{
		// Anything but an explicit allow (an unset decision from a broken peer) is a deny.
		Allow:      resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW,
		Reasons:    resp.GetReasons(),
		DecisionID: resp.GetDecisionId(),
		Sequence:   resp.GetSequence(),
		Epoch:      resp.GetEpoch(),
	}
}
