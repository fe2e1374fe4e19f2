package registrysvc

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/registry"
)

// Converters between the registry's domain types, their protos, and the issuer's view of them.
// Output-only fields of a create request (state, times, etag) are ignored, as the API says.

// partnerFromProto takes a partner's input fields; its etag too, for updates.
func partnerFromProto(p *treatyv1.Partner) registry.Partner {
	return registry.Partner{
		ID: p.GetId(), DisplayName: p.GetDisplayName(), OwnerTeam: p.GetOwnerTeam(),
		ContractEnd: p.GetContractEndTime().AsTime(), RiskTier: p.GetRiskTier(),
		LegalName: p.GetLegalName(), RelationshipType: p.GetRelationshipType(),
		AccountableOwner: p.GetAccountableOwner(), BackupOwner: p.GetBackupOwner(), SecurityContact: p.GetSecurityContact(),
		BreachNoticeHours: p.GetBreachNoticeHours(), ContractID: p.GetContractId(),
		ContractStart: optionalTime(p.GetContractStartTime()), DataClassification: p.GetDataClassification(),
		LastAssessment: optionalTime(p.GetLastAssessmentTime()), LastAssessmentResult: p.GetLastAssessmentResult(),
		NextReview: optionalTime(p.GetNextReviewTime()), Etag: p.GetEtag(),
	}
}

func partnerToProto(p registry.Partner) *treatyv1.Partner {
	return &treatyv1.Partner{
		Id: p.ID, DisplayName: p.DisplayName, OwnerTeam: p.OwnerTeam,
		ContractEndTime: timestamppb.New(p.ContractEnd), State: p.State, RiskTier: p.RiskTier,
		CreateTime: timestamppb.New(p.Created), UpdateTime: timestamppb.New(p.Updated), Etag: p.Etag,
		LegalName: p.LegalName, RelationshipType: p.RelationshipType,
		AccountableOwner: p.AccountableOwner, BackupOwner: p.BackupOwner, SecurityContact: p.SecurityContact,
		BreachNoticeHours: p.BreachNoticeHours, ContractId: p.ContractID,
		ContractStartTime: optionalTimestamp(p.ContractStart), DataClassification: p.DataClassification,
		LastAssessmentTime: optionalTimestamp(p.LastAssessment), LastAssessmentResult: p.LastAssessmentResult,
		NextReviewTime: optionalTimestamp(p.NextReview), ApprovedBy: p.ApprovedBy, ApproveTime: optionalTimestamp(p.Approved),
	}
}

// integrationFromProto takes an integration's input fields; its etag too, for updates. Source
// ranges were checked by validation; one that does not parse here is dropped, and the domain's
// check of the count still runs.
func integrationFromProto(i *treatyv1.Integration) registry.Integration {
	ranges, _ := registry.ParseSourceRanges("integration.source_ranges", i.GetSourceRanges())
	return registry.Integration{
		ID: i.GetId(), PartnerID: i.GetPartnerId(), AllowedScopes: i.GetAllowedScopes(), Audiences: i.GetAudiences(),
		MaxTTL: i.GetMaxCredentialTtl().AsDuration(), ClientAuthMethods: i.GetAllowedClientAuthMethods(),
		SenderConstraint: i.GetSenderConstraint(),
		Purpose:          i.GetPurpose(), Environment: i.GetEnvironment(), SourceRanges: ranges,
		ApprovalTicket: i.GetApprovalTicket(), Owner: i.GetOwner(), Etag: i.GetEtag(),
	}
}

func integrationToProto(i registry.Integration) *treatyv1.Integration {
	return &treatyv1.Integration{
		Id: i.ID, PartnerId: i.PartnerID, AllowedScopes: i.AllowedScopes, Audiences: i.Audiences,
		MaxCredentialTtl: durationpb.New(i.MaxTTL), State: i.State,
		AllowedClientAuthMethods: i.ClientAuthMethods, SenderConstraint: i.SenderConstraint,
		CreateTime: timestamppb.New(i.Created), UpdateTime: timestamppb.New(i.Updated), Etag: i.Etag,
		Purpose: i.Purpose, Environment: i.Environment, SourceRanges: registry.RangeStrings(i.SourceRanges),
		ApprovedBy: i.ApprovedBy, ApprovalTicket: i.ApprovalTicket, Owner: i.Owner,
		ApproveTime: optionalTimestamp(i.Approved), LastRecertifyTime: optionalTimestamp(i.LastRecertified),
	}
}

func partnerFilterFromProto(req *treatyv1.ListPartnersRequest) registry.PartnerFilter {
	return registry.PartnerFilter{
		State: req.GetState(), Owner: req.GetOwner(), RiskTier: req.GetRiskTier(),
		ContractEndBefore: optionalTime(req.GetContractEndBefore()),
	}
}

func integrationFilterFromProto(req *treatyv1.ListIntegrationsRequest) registry.IntegrationFilter {
	return registry.IntegrationFilter{
		PartnerID: req.GetPartnerId(), State: req.GetState(), Owner: req.GetOwner(), Environment: req.GetEnvironment(),
	}
}

// optionalTime reads an optional timestamp: unset is the zero time.
func optionalTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

// optionalTimestamp writes an optional time: the zero time is unset.
func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func workloadToProto(w registry.Workload) *treatyv1.Workload {
	keys := make([]*treatyv1.WorkloadKey, len(w.Keys))
	for i, k := range w.Keys {
		keys[i] = &treatyv1.WorkloadKey{KeyId: k.KeyID, Algorithm: k.Algorithm, PublicKeyPem: k.PublicKeyPEM}
	}
	return &treatyv1.Workload{
		Id: w.ID, IntegrationId: w.IntegrationID, PartnerId: w.PartnerID, PublicKeys: keys, State: w.State,
		CreateTime: timestamppb.New(w.Created), UpdateTime: timestamppb.New(w.Updated), Etag: w.Etag,
		TlsClientAuth: tlsToProto(w.TLS), CreatedBy: w.CreatedBy, LastUseTime: optionalTimestamp(w.LastUsed),
	}
}

func tlsToProto(t *registry.TLSSubject) *treatyv1.TlsClientAuth {
	if t == nil {
		return nil
	}
	return &treatyv1.TlsClientAuth{SubjectDn: t.SubjectDN, SanDns: t.SANDNS, SanUri: t.SANURI}
}

func tlsFromProto(t *treatyv1.TlsClientAuth) *registry.TLSSubject {
	if t == nil {
		return nil
	}
	return &registry.TLSSubject{SubjectDN: t.GetSubjectDn(), SANDNS: t.GetSanDns(), SANURI: t.GetSanUri()}
}

func policyToProto(p registry.Policy) *treatyv1.Policy {
	return &treatyv1.Policy{
		Id: p.ID, PartnerId: p.PartnerID, Version: p.Version, Mode: p.Mode, Text: p.Text, Current: p.Current,
		CreateTime: timestamppb.New(p.Created), Actor: p.Actor,
	}
}

func convertAll[T any, P any](items []T, conv func(T) P) []P {
	out := make([]P, len(items))
	for i, item := range items {
		out[i] = conv(item)
	}
	return out
}

// workloadForIssuer turns a workload from the registry's API into the issuer's view, parsing each
// key and checking it against its key id, so the issuer never verifies with a key other than the
// one registered under that id.
func workloadForIssuer(w *treatyv1.Workload) (issuer.Workload, error) {
	keys := make([]issuer.WorkloadKey, len(w.GetPublicKeys()))
	for i, k := range w.GetPublicKeys() {
		pub, err := registry.Key{KeyID: k.GetKeyId(), Algorithm: k.GetAlgorithm(), PublicKeyPEM: k.GetPublicKeyPem()}.PublicKey()
		if err != nil {
			return issuer.Workload{}, fmt.Errorf("registry returned an unusable key for workload %q: %w", w.GetId(), err)
		}
		keys[i] = issuer.WorkloadKey{KeyID: k.GetKeyId(), Algorithm: k.GetAlgorithm(), Public: pub}
	}
	out := issuer.Workload{
		ID: w.GetId(), IntegrationID: w.GetIntegrationId(), PartnerID: w.GetPartnerId(),
		Active: w.GetState() == treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE, Keys: keys,
	}
	if t := w.GetTlsClientAuth(); t != nil {
		out.TLS = &issuer.TLSSubject{SubjectDN: t.GetSubjectDn(), SANDNS: t.GetSanDns(), SANURI: t.GetSanUri()}
	}
	return out, nil
}

func integrationForIssuer(i *treatyv1.Integration) issuer.Integration {
	return issuer.Integration{
		ID: i.GetId(), PartnerID: i.GetPartnerId(),
		Active:        i.GetState() == treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
		AllowedScopes: i.GetAllowedScopes(), Audiences: i.GetAudiences(), MaxTTL: i.GetMaxCredentialTtl().AsDuration(),
		ClientAuthMethods: methodsForIssuer(i.GetAllowedClientAuthMethods()),
		SenderConstraint:  constraintForIssuer(i.GetSenderConstraint()),
	}
}

// methodsForIssuer names the methods as the issuer does (RFC 8414 names). An integration the
// registry returns without methods allows none, so the issuer fails closed.
func methodsForIssuer(ms []treatyv1.ClientAuthMethod) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m != treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_UNSPECIFIED {
			out = append(out, registry.MethodName(m))
		}
	}
	return out
}

// constraintForIssuer names the constraint as the issuer does; one this adapter does not know is
// passed on as its proto name, which the issuer refuses (it fails closed).
func constraintForIssuer(c treatyv1.SenderConstraint) string {
	switch c {
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED, treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE:
		return issuer.ConstraintNone
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP:
		return issuer.ConstraintDPoP
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_MTLS:
		return issuer.ConstraintMTLS
	case treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP_OR_MTLS:
		return issuer.ConstraintDPoPOrMTLS
	}
	return c.String()
}

func partnerForIssuer(p *treatyv1.Partner) issuer.Partner {
	// A missing contract end reads as 1970: access has ended, so the issuer fails closed.
	return issuer.Partner{
		ID: p.GetId(), Active: p.GetState() == treatyv1.PartnerState_PARTNER_STATE_ACTIVE,
		ContractEnd: p.GetContractEndTime().AsTime(),
	}
}

func clientSecretToProto(s registry.ClientSecret) *treatyv1.ClientSecret {
	out := &treatyv1.ClientSecret{
		Id: s.ID, WorkloadId: s.WorkloadID, CreateTime: timestamppb.New(s.Created),
		ExpireTime: timestamppb.New(s.Expires), Creator: s.Creator,
	}
	if !s.Revoked.IsZero() {
		out.RevokeTime = timestamppb.New(s.Revoked)
	}
	return out
}

func verifierToProto(v registry.ClientSecretVerifier) *treatyv1.ClientSecretVerifier {
	return &treatyv1.ClientSecretVerifier{Id: v.ID, Sha256: v.SHA256[:], ExpireTime: timestamppb.New(v.Expires)}
}

// verifiersForIssuer turns the registry's verifiers into the issuer's; a hash of the wrong size or
// a missing expiry is an internal error, so the issuer fails closed.
func verifiersForIssuer(workloadID string, vs []*treatyv1.ClientSecretVerifier) ([]issuer.ClientSecretVerifier, error) {
	out := make([]issuer.ClientSecretVerifier, len(vs))
	for i, v := range vs {
		if len(v.GetSha256()) != len(out[i].SHA256) || v.GetExpireTime() == nil {
			return nil, fmt.Errorf("registry returned an unusable client secret verifier %q for workload %q", v.GetId(), workloadID)
		}
		out[i].ID, out[i].Expires = v.GetId(), v.GetExpireTime().AsTime()
		copy(out[i].SHA256[:], v.GetSha256())
	}
	return out, nil
}
