package pdpsvc

import (
	"math"
	"net/netip"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// The reasons slices of a pdp.Decision are shared and read-only; the responses below only pass
// them to the marshaller, which never writes them.

// checkRequest converts a validated check. trusted says whether the caller may send claims or a
// workload id; requestID is the caller's x-request-id.
func checkRequest(req *treatyv1.CheckRequest, trusted bool, requestID string) pdp.CheckRequest {
	out := pdp.CheckRequest{
		Token: req.GetToken(), WorkloadID: req.GetWorkloadId(), Trusted: trusted,
		Action: req.GetAction(), Resource: req.GetResource(), MinSequence: req.GetMinSequence(), RequestID: requestID,
	}
	if c := req.GetClaims(); c != nil {
		out.Claims = verifiedClaims(c)
	}
	if c := req.GetContext(); c != nil {
		out.Context.Environment = c.GetEnvironment()
		if ip := c.GetSourceIp(); ip != "" {
			out.Context.SourceIP, _ = netip.ParseAddr(ip) // validated
		}
	}
	if p := req.GetProof(); p != nil {
		out.Proof = pdp.Proof{DPoP: p.GetDpop(), Method: p.GetHttpMethod(), URI: p.GetHttpUri(), CertThumbprint: p.GetClientCertThumbprint()}
	}
	if props := req.GetResourceProperties(); props != nil {
		out.Properties = structMap(props)
	}
	return out
}

func verifiedClaims(c *treatyv1.VerifiedClaims) *pdp.VerifiedClaims {
	out := &pdp.VerifiedClaims{KeyID: c.GetKid(), Claims: token.Claims{
		Issuer: c.GetIss(), Subject: c.GetSub(), ClientID: c.GetClientId(), Partner: c.GetPartner(),
		Integration: c.GetIntegration(), Scope: strings.Join(c.GetScopes(), " "), Audience: c.GetAud(),
		IssuedAt: c.GetIat(), Expiry: c.GetExp(), ID: c.GetJti(), Sequence: c.GetTsq(), Epoch: c.GetTep(),
	}}
	if cnf := c.GetCnf(); cnf.GetJkt() != "" || cnf.GetX5TS256() != "" {
		out.Confirmation = &token.Confirmation{JKT: cnf.GetJkt(), X5TS256: cnf.GetX5TS256()}
	}
	return out
}

// structMap converts resource properties to the values pdp.CheckRequest.Properties documents:
// string, bool, float64 or int64 (a number with no fractional part), []any, map[string]any.
func structMap(s *structpb.Struct) map[string]any {
	out := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		out[k] = value(v)
	}
	return out
}

func value(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_NumberValue:
		if f := k.NumberValue; f == math.Trunc(f) && f >= -(1<<53) && f <= 1<<53 {
			return int64(f)
		}
		return k.NumberValue
	case *structpb.Value_StructValue:
		return structMap(k.StructValue)
	case *structpb.Value_ListValue:
		list := make([]any, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			list[i] = value(e)
		}
		return list
	}
	return nil // null
}

// batchSemantics converts validated semantics; unset means execute all.
func batchSemantics(s treatyv1.BatchSemantics) pdp.BatchSemantics {
	switch s {
	case treatyv1.BatchSemantics_BATCH_SEMANTICS_DENY_ON_FIRST_DENY:
		return pdp.DenyOnFirstDeny
	case treatyv1.BatchSemantics_BATCH_SEMANTICS_PERMIT_ON_FIRST_PERMIT:
		return pdp.PermitOnFirstPermit
	}
	return pdp.ExecuteAll
}

func checkResponse(d *pdp.Decision) *treatyv1.CheckResponse {
	return &treatyv1.CheckResponse{
		Decision: decision(d.Allow), Reasons: d.Reasons, DecisionId: d.DecisionID.String(), Sequence: d.Sequence,
		Epoch: d.Epoch, PolicyId: d.PolicyID,
	}
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
