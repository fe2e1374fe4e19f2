package issuersvc

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// issueRequest converts a validated token request.
func issueRequest(req *treatyv1.IssueTokenRequest) issuer.Request {
	r := issuer.Request{
		AssertionType: req.GetClientAssertionType(), Assertion: req.GetClientAssertion(),
		Scopes: req.GetScopes(), Audience: req.GetAudience(), MinSequence: req.GetMinSequence(),
	}
	if ttl := req.GetTtl(); ttl != nil {
		r.TTL = ttl.AsDuration()
	}
	return r
}

func credentialProto(c issuer.Credential) *treatyv1.Credential {
	return &treatyv1.Credential{
		Id: c.ID, WorkloadId: c.WorkloadID, IntegrationId: c.IntegrationID, PartnerId: c.PartnerID,
		Scopes: c.Scopes, Audience: c.Audience, IssueTime: timestamppb.New(c.IssueTime),
		ExpireTime: timestamppb.New(c.ExpireTime), Kid: c.Kid, Sequence: c.Sequence,
		AuthMethod: c.AuthMethod, Binding: c.Binding, BindingThumbprint: c.BindingThumbprint,
		LastSeenTime: optionalTime(c.LastSeen),
		ParentId:     c.ParentID, RevokedSequence: c.RevokedSequence,
	}
}

// exchangeRequest converts a validated token exchange request.
func exchangeRequest(req *treatyv1.ExchangeTokenRequest) issuer.ExchangeRequest {
	return issuer.ExchangeRequest{
		Request:      issueRequest(req.GetRequest()),
		SubjectToken: req.GetSubjectToken(), SubjectTokenType: req.GetSubjectTokenType(),
		ActorToken: req.GetActorToken(), ActorTokenType: req.GetActorTokenType(), Resource: req.GetResource(),
	}
}

func signingKeyProto(k issuer.SigningKey) *treatyv1.SigningKey {
	return &treatyv1.SigningKey{
		Kid: k.Kid, Algorithm: k.Algorithm, PublicJwk: k.PublicJWK, Active: k.Active, Revoked: k.Revoked,
		CreateTime: timestamppb.New(k.Created), PublishedSequence: k.PublishedSequence,
		State: keyStates[k.State], ActivateTime: optionalTime(k.Activated), RetireTime: optionalTime(k.Retired),
		UnpublishTime: optionalTime(k.PublishedUntil),
	}
}

var keyStates = map[issuer.KeyState]treatyv1.SigningKeyState{
	issuer.KeyNext:    treatyv1.SigningKeyState_SIGNING_KEY_STATE_NEXT,
	issuer.KeyActive:  treatyv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE,
	issuer.KeyRetired: treatyv1.SigningKeyState_SIGNING_KEY_STATE_RETIRED,
	issuer.KeyExpired: treatyv1.SigningKeyState_SIGNING_KEY_STATE_EXPIRED,
	issuer.KeyRevoked: treatyv1.SigningKeyState_SIGNING_KEY_STATE_REVOKED,
}

// optionalTime leaves a zero time unset.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func credentialFilter(req *treatyv1.ListCredentialsRequest) issuer.Filter {
	return issuer.Filter{
		PartnerID: req.GetPartnerId(), IntegrationID: req.GetIntegrationId(), WorkloadID: req.GetWorkloadId(),
		LiveOnly: req.GetLiveOnly(), ExpiredOnly: req.GetExpiredOnly(),
	}
}

// liveQuery converts a validated CountLiveCredentials request.
func liveQuery(req *treatyv1.CountLiveCredentialsRequest) issuer.LiveQuery {
	return issuer.LiveQuery{
		PartnerID: req.GetPartnerId(), IntegrationID: req.GetIntegrationId(), WorkloadID: req.GetWorkloadId(),
		CredentialID: req.GetCredentialId(), Kid: req.GetKid(),
		BelowSequence: req.GetBelowSequence(), MinSequence: req.GetMinSequence(), MaxIDs: int(req.GetMaxIds()),
		WorkloadIDs: req.GetWorkloadIds(),
	}
}

// usages converts a validated ReportUsage request.
func usages(req *treatyv1.ReportUsageRequest) []issuer.Usage {
	out := make([]issuer.Usage, len(req.GetUsages()))
	for i, u := range req.GetUsages() {
		out[i] = issuer.Usage{CredentialID: u.GetCredentialId(), LastSeen: u.GetLastSeenTime().AsTime()}
	}
	return out
}
