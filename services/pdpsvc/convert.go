package pdpsvc

import (
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
)

// The reasons slices of a pdp.Decision are shared and read-only; the responses below only pass
// them to the marshaller, which never writes them.

func checkRequest(req *treatyv1.CheckRequest) pdp.CheckRequest {
	return pdp.CheckRequest{Token: req.GetToken(), Action: req.GetAction(), Resource: req.GetResource(), MinSequence: req.GetMinSequence()}
}

func checkResponse(d pdp.Decision) *treatyv1.CheckResponse {
	return &treatyv1.CheckResponse{Decision: decision(d.Allow), Reasons: d.Reasons, DecisionId: d.DecisionID.String(), Sequence: d.Sequence}
}

func issuanceRequest(req *treatyv1.CheckIssuanceRequest) pdp.IssuanceRequest {
	return pdp.IssuanceRequest{
		WorkloadID: req.GetWorkloadId(), Scopes: req.GetScopes(), Audience: req.GetAudience(), Kid: req.GetKid(),
		MinSequence: req.GetMinSequence(),
	}
}

func issuanceResponse(d pdp.Decision) *treatyv1.CheckIssuanceResponse {
	return &treatyv1.CheckIssuanceResponse{Decision: decision(d.Allow), Reasons: d.Reasons, DecisionId: d.DecisionID.String(), Sequence: d.Sequence, Epoch: d.Epoch}
}

func decision(allow bool) treatyv1.Decision {
	if allow {
		return treatyv1.Decision_DECISION_ALLOW
	}
	return treatyv1.Decision_DECISION_DENY
}
