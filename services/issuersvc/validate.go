package issuersvc

import (
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

// Bounds on request fields the domain does not check itself.
const (
	maxPageToken = 64
	// maxWorkloadIDs bounds a CountLiveCredentials request's workload_ids: a dry run lists the
	// workloads it cuts off, a partner's at most.
	maxWorkloadIDs = 10000
)

// validateIssueToken checks the shape of a token request. The assertion's content, including its
// size, is the domain's to judge: every defect there is UNAUTHENTICATED.
func validateIssueToken(req *treatyv1.IssueTokenRequest) error {
	if t := req.GetClientAssertionType(); t != "" && t != issuer.AssertionType {
		return fail.Invalidf("client_assertion_type", "client_assertion_type must be empty or %q", issuer.AssertionType)
	}
	if req.GetClientAssertion() == "" {
		return fail.Invalidf("client_assertion", "client_assertion is required: a JWT signed by the workload's registered key")
	}
	if len(req.GetScopes()) == 0 {
		return fail.Invalidf("scopes", "scopes: request at least one scope")
	}
	for _, s := range req.GetScopes() {
		if !token.ValidScope(s) {
			return fail.Invalidf("scopes", "scopes: %q is not a valid scope token (printable ASCII, no spaces, quotes or backslashes)", fail.Clip(s))
		}
	}
	if req.GetAudience() == "" {
		return fail.Invalidf("audience", "audience is required: the resource the credential is for")
	}
	if ttl := req.GetTtl(); ttl != nil {
		if err := ttl.CheckValid(); err != nil {
			return fail.Invalidf("ttl", "ttl is not a valid duration")
		}
		if ttl.AsDuration() < 0 {
			return fail.Invalidf("ttl", "ttl must not be negative")
		}
	}
	return nil
}

// validateExchangeToken checks the shape of a token exchange request: its nested request as
// validateIssueToken does (scopes may be empty: the subject token's are asked for; the audience may
// come from resource), naming fields by their path. The subject token's content is the domain's to
// judge.
func validateExchangeToken(req *treatyv1.ExchangeTokenRequest) error {
	r := req.GetRequest()
	if r == nil {
		return fail.Invalidf("request", "request is required: the client authentication and what is asked for")
	}
	switch {
	case req.GetSubjectToken() == "":
		return fail.Invalidf("subject_token", "subject_token is required: the access token to exchange")
	case req.GetSubjectTokenType() != issuer.TokenTypeAccessToken:
		return fail.Invalidf("subject_token_type", "subject_token_type must be %q", issuer.TokenTypeAccessToken)
	case req.GetActorToken() != "" || req.GetActorTokenType() != "":
		return fail.Invalidf("actor_token", "actor_token is not supported: the client's own authentication identifies the actor")
	case req.GetResource() != "" && r.GetAudience() != "" && req.GetResource() != r.GetAudience():
		return fail.Invalidf("resource", "resource and request.audience name different targets; give one")
	}
	shape := &treatyv1.IssueTokenRequest{
		ClientAssertionType: r.GetClientAssertionType(), ClientAssertion: r.GetClientAssertion(),
		Scopes: r.GetScopes(), Audience: r.GetAudience(), Ttl: r.GetTtl(),
	}
	if len(shape.Scopes) == 0 {
		shape.Scopes = []string{"subject-token-scopes"} // none asks for the subject token's
	}
	if shape.Audience == "" {
		shape.Audience = req.GetResource()
	}
	if err := validateIssueToken(shape); err != nil {
		var fe *fail.Error
		if errors.As(err, &fe) && fe.Kind == fail.Invalid && fe.Field != "" {
			return fail.Invalidf("request."+fe.Field, "request.%s", fe.Msg)
		}
		return err
	}
	return nil
}

func validateGetCredential(req *treatyv1.GetCredentialRequest) error {
	return fail.CheckOpaqueID("id", req.GetId())
}

func validateListCredentials(req *treatyv1.ListCredentialsRequest) error {
	if id := req.GetPartnerId(); id != "" {
		if err := fail.CheckID("partner_id", id); err != nil {
			return err
		}
	}
	if id := req.GetWorkloadId(); id != "" {
		if err := fail.CheckID("workload_id", id); err != nil {
			return err
		}
	}
	if id := req.GetIntegrationId(); id != "" {
		if err := fail.CheckID("integration_id", id); err != nil {
			return err
		}
	}
	if req.GetLiveOnly() && req.GetExpiredOnly() {
		return fail.Invalidf("expired_only", "live_only and expired_only exclude each other")
	}
	if req.GetPageSize() < 0 {
		return fail.Invalidf("page_size", "page_size must not be negative")
	}
	if len(req.GetPageToken()) > maxPageToken {
		return fail.Invalidf("page_token", "page_token is not a token this listing returned")
	}
	return nil
}

func validateCountLiveCredentials(req *treatyv1.CountLiveCredentialsRequest) error {
	for field, id := range map[string]string{
		"partner_id": req.GetPartnerId(), "integration_id": req.GetIntegrationId(), "workload_id": req.GetWorkloadId(),
	} {
		if id != "" {
			if err := fail.CheckID(field, id); err != nil {
				return err
			}
		}
	}
	for field, id := range map[string]string{"credential_id": req.GetCredentialId(), "kid": req.GetKid()} {
		if id != "" {
			if err := fail.CheckOpaqueID(field, id); err != nil {
				return err
			}
		}
	}
	if n := len(req.GetWorkloadIds()); n > maxWorkloadIDs {
		return fail.Invalidf("workload_ids", "at most %d workload_ids, got %d", maxWorkloadIDs, n)
	}
	for _, id := range req.GetWorkloadIds() {
		if err := fail.CheckID("workload_ids", id); err != nil {
			return err
		}
	}
	if req.GetMaxIds() < 0 {
		return fail.Invalidf("max_ids", "max_ids must not be negative")
	}
	if req.GetPartnerId() == "" && req.GetIntegrationId() == "" && req.GetWorkloadId() == "" && len(req.GetWorkloadIds()) == 0 && req.GetCredentialId() == "" &&
		req.GetKid() == "" && req.GetBelowSequence() == 0 {
		return fail.Invalidf("partner_id", "name what to count: partner_id, integration_id, workload_id, credential_id, kid or below_sequence")
	}
	return nil
}

func validateReportUsage(req *treatyv1.ReportUsageRequest) error {
	if n := len(req.GetUsages()); n > issuer.MaxUsageReport {
		return fail.Invalidf("usages", "usages: at most %d entries per report, not %d", issuer.MaxUsageReport, n)
	}
	for i, u := range req.GetUsages() {
		if err := fail.CheckOpaqueID(fmt.Sprintf("usages[%d].credential_id", i), u.GetCredentialId()); err != nil {
			return err
		}
		if err := u.GetLastSeenTime().CheckValid(); err != nil {
			return fail.Invalidf(fmt.Sprintf("usages[%d].last_seen_time", i), "usages[%d].last_seen_time is required and must be a valid time", i)
		}
	}
	return nil
}

func validateSummarizeCredentials(req *treatyv1.SummarizeCredentialsRequest) error {
	if req.SinceTime != nil {
		if err := req.GetSinceTime().CheckValid(); err != nil {
			return fail.Invalidf("since_time", "since_time must be a valid time")
		}
	}
	return nil
}

func validateGetWorkloadUsage(req *treatyv1.GetWorkloadUsageRequest) error {
	if n := len(req.GetWorkloadIds()); n > issuer.MaxWorkloadUsageQuery {
		return fail.Invalidf("workload_ids", "at most %d workload_ids, got %d", issuer.MaxWorkloadUsageQuery, n)
	}
	for _, id := range req.GetWorkloadIds() {
		if err := fail.CheckID("workload_ids", id); err != nil {
			return err
		}
	}
	return nil
}
