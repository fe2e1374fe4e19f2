package registrysvc

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// Request validation, before any domain code runs: malformed input is INVALID_ARGUMENT naming the
// proto field. Rules that depend on state or configuration (a contract end in the future, the
// deployment's maximum TTL, an Ed25519 key) are the domain's, which names the same fields.

func validateID(field, id string) error { return fail.CheckID(field, id) }

func validatePage(pageSize int32) error {
	if pageSize < 0 {
		return fail.Invalidf("page_size", "page_size must not be negative")
	}
	return nil
}

func validateFilteredPage(filterField, filter string, pageSize int32) error {
	if filter != "" {
		if err := fail.CheckID(filterField, filter); err != nil {
			return err
		}
	}
	return validatePage(pageSize)
}

func validateCreatePartner(req *treatyv1.CreatePartnerRequest) error {
	p := req.GetPartner()
	if p == nil {
		return fail.Invalidf("partner", "partner is required")
	}
	if err := fail.CheckID("partner.id", p.GetId()); err != nil {
		return err
	}
	if err := registry.CheckName("partner.display_name", p.GetDisplayName()); err != nil {
		return err
	}
	if err := registry.CheckName("partner.owner_team", p.GetOwnerTeam()); err != nil {
		return err
	}
	if err := registry.CheckTier("partner.risk_tier", p.GetRiskTier()); err != nil {
		return err
	}
	switch end := p.GetContractEndTime(); {
	case end == nil:
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time is required: the instant the partner's access ends")
	case end.CheckValid() != nil:
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time is not a valid timestamp")
	}
	if err := validatePartnerTimes(p); err != nil {
		return err
	}
	if err := validateCreateOptions(req.GetActivate(), req.GetApprovedBy()); err != nil {
		return err
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

// validatePartnerTimes checks that the partner's timestamps, where set, are valid.
func validatePartnerTimes(p *treatyv1.Partner) error {
	for _, ts := range []struct {
		field string
		t     *timestamppb.Timestamp
	}{
		{"partner.contract_end_time", p.GetContractEndTime()}, {"partner.contract_start_time", p.GetContractStartTime()},
		{"partner.last_assessment_time", p.GetLastAssessmentTime()}, {"partner.next_review_time", p.GetNextReviewTime()},
	} {
		if ts.t != nil && ts.t.CheckValid() != nil {
			return fail.Invalidf(ts.field, "%s is not a valid timestamp", ts.field)
		}
	}
	return nil
}

func validateEndPartner(id, reason, actor string) error {
	if err := fail.CheckID("id", id); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", reason); err != nil {
		return err
	}
	return registry.CheckActor("actor", actor)
}

// validateRetire checks a RetireIntegration or RetireWorkload request: the same fields as ending
// a partner.
func validateRetire(id, reason, actor string) error { return validateEndPartner(id, reason, actor) }

func validateCreateIntegration(req *treatyv1.CreateIntegrationRequest) error {
	i := req.GetIntegration()
	if i == nil {
		return fail.Invalidf("integration", "integration is required")
	}
	if err := fail.CheckID("integration.id", i.GetId()); err != nil {
		return err
	}
	if err := fail.CheckID("integration.partner_id", i.GetPartnerId()); err != nil {
		return err
	}
	if err := registry.CheckScopes("integration.allowed_scopes", i.GetAllowedScopes()); err != nil {
		return err
	}
	if err := registry.CheckAudiences("integration.audiences", i.GetAudiences()); err != nil {
		return err
	}
	if err := registry.CheckMethods("integration.allowed_client_auth_methods", i.GetAllowedClientAuthMethods()); err != nil {
		return err
	}
	if err := registry.CheckConstraint("integration.sender_constraint", i.GetSenderConstraint()); err != nil {
		return err
	}
	switch ttl := i.GetMaxCredentialTtl(); {
	case ttl == nil:
		return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl is required")
	case ttl.CheckValid() != nil:
		return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl is not a valid duration")
	case ttl.AsDuration() <= 0:
		return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl must be positive")
	}
	if err := registry.CheckEnvironment("integration.environment", i.GetEnvironment()); err != nil {
		return err
	}
	if err := validateCreateOptions(req.GetActivate(), req.GetApprovedBy()); err != nil {
		return err
	}
	if _, err := registry.ParseSourceRanges("integration.source_ranges", i.GetSourceRanges()); err != nil {
		return err
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateCreateWorkload(req *treatyv1.CreateWorkloadRequest) error {
	if err := fail.CheckID("id", req.GetId()); err != nil {
		return err
	}
	if err := fail.CheckID("integration_id", req.GetIntegrationId()); err != nil {
		return err
	}
	if err := tlsFromProto(req.GetTlsClientAuth()).Check("tls_client_auth"); err != nil {
		return err
	}
	if strings.TrimSpace(req.GetPublicKeyPem()) == "" && req.GetTlsClientAuth() == nil {
		return fail.Invalidf("public_key_pem", "public_key_pem is required (unless tls_client_auth names the workload's client certificate): the workload's public key as PKIX PEM (-----BEGIN PUBLIC KEY-----)")
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateAddWorkloadKey(req *treatyv1.AddWorkloadKeyRequest) error {
	if err := fail.CheckID("id", req.GetId()); err != nil {
		return err
	}
	if strings.TrimSpace(req.GetPublicKeyPem()) == "" {
		return fail.Invalidf("public_key_pem", "public_key_pem is required: the workload's new public key as PKIX PEM (-----BEGIN PUBLIC KEY-----)")
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateRemoveWorkloadKey(req *treatyv1.RemoveWorkloadKeyRequest) error {
	if err := fail.CheckID("id", req.GetId()); err != nil {
		return err
	}
	if err := fail.CheckOpaqueID("key_id", req.GetKeyId()); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validatePutPolicy(req *treatyv1.PutPolicyRequest) error {
	if err := fail.CheckID("partner_id", req.GetPartnerId()); err != nil {
		return err
	}
	switch req.GetMode() {
	case treatyv1.PolicyMode_POLICY_MODE_UNSPECIFIED, treatyv1.PolicyMode_POLICY_MODE_LIVE, treatyv1.PolicyMode_POLICY_MODE_SHADOW:
	default:
		return fail.Invalidf("mode", "mode must be POLICY_MODE_LIVE (the default) or POLICY_MODE_SHADOW")
	}
	if strings.TrimSpace(req.GetText()) == "" {
		return fail.Invalidf("text", "text is required: the policy set in the Cedar language")
	}
	// The text's syntax and validation are the domain's (package policy), which names the line.
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

// validatePolicyID accepts PARTNER@VERSION or a partner id; the version's form is the domain's.
func validatePolicyID(id string) error {
	partnerID, _, _ := strings.Cut(id, "@")
	if !fail.ValidID(partnerID) {
		return fail.Invalidf("id", "id must be PARTNER@VERSION or a partner id, not %q", id)
	}
	return nil
}

func validateCreateClientSecret(req *treatyv1.CreateClientSecretRequest) error {
	if err := fail.CheckID("workload_id", req.GetWorkloadId()); err != nil {
		return err
	}
	if ttl := req.GetTtl(); ttl != nil && (ttl.CheckValid() != nil || ttl.AsDuration() <= 0) {
		return fail.Invalidf("ttl", "ttl must be a positive duration (at most 90 days), or unset for 30 days")
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateRevokeClientSecret(req *treatyv1.RevokeClientSecretRequest) error {
	if err := fail.CheckID("workload_id", req.GetWorkloadId()); err != nil {
		return err
	}
	if err := fail.CheckID("secret_id", req.GetSecretId()); err != nil {
		return err
	}
	if err := registry.CheckReason("reason", req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

// validateCreateOptions checks the one-step shortcut's fields of a create request.
func validateCreateOptions(activate bool, approvedBy string) error {
	switch {
	case activate && approvedBy == "":
		return fail.Invalidf("approved_by", "approved_by is required with activate: who approved it, for the audit trail")
	case !activate && approvedBy != "":
		return fail.Invalidf("approved_by", "approved_by is only taken with activate; approve separately otherwise")
	case approvedBy != "":
		return registry.CheckName("approved_by", approvedBy)
	}
	return nil
}

func validateStep(id, actor string) error {
	if err := fail.CheckID("id", id); err != nil {
		return err
	}
	return registry.CheckActor("actor", actor)
}

func validateApprove(id, approvedBy, ticket, actor string) error {
	if err := validateStep(id, actor); err != nil {
		return err
	}
	if approvedBy == "" && actor == "" {
		return fail.Invalidf("approved_by", "approved_by is required (or an actor): an approval records who approved")
	}
	if approvedBy != "" {
		if err := registry.CheckName("approved_by", approvedBy); err != nil {
			return err
		}
	}
	if ticket != "" {
		return registry.CheckName("approval_ticket", ticket)
	}
	return nil
}

// validateOptionalReason checks a reason a request may leave empty: when given, it follows the
// rules of a required one.
func validateOptionalReason(reason string) error {
	if reason == "" {
		return nil
	}
	return registry.CheckReason("reason", reason)
}

func validateRecertify(req *treatyv1.RecertifyIntegrationRequest) error {
	if err := validateStep(req.GetId(), req.GetActor()); err != nil {
		return err
	}
	if req.GetReason() != "" {
		return registry.CheckReason("reason", req.GetReason())
	}
	return nil
}

func validateMask(mask *fieldmaskpb.FieldMask, allowed []string) error {
	if len(mask.GetPaths()) == 0 {
		return fail.Invalidf("update_mask", "update_mask is required: name the fields to change, from %s", strings.Join(allowed, ", "))
	}
	for _, p := range mask.GetPaths() {
		if !slices.Contains(allowed, p) {
			return fail.Invalidf("update_mask", "update_mask names %q, which an update cannot change; choose from %s", p, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func validateUpdatePartner(req *treatyv1.UpdatePartnerRequest) error {
	p := req.GetPartner()
	if p == nil {
		return fail.Invalidf("partner", "partner is required")
	}
	if err := fail.CheckID("partner.id", p.GetId()); err != nil {
		return err
	}
	if p.GetEtag() == "" {
		return fail.Invalidf("partner.etag", "partner.etag is required: pass the etag of the partner as you read it, so that a concurrent change is not overwritten")
	}
	if err := validateMask(req.GetUpdateMask(), registry.PartnerUpdateFields); err != nil {
		return err
	}
	if err := validatePartnerTimes(p); err != nil {
		return err
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateUpdateIntegration(req *treatyv1.UpdateIntegrationRequest) error {
	i := req.GetIntegration()
	if i == nil {
		return fail.Invalidf("integration", "integration is required")
	}
	if err := fail.CheckID("integration.id", i.GetId()); err != nil {
		return err
	}
	if i.GetEtag() == "" {
		return fail.Invalidf("integration.etag", "integration.etag is required: pass the etag of the integration as you read it, so that a concurrent change is not overwritten")
	}
	if err := validateMask(req.GetUpdateMask(), registry.IntegrationUpdateFields); err != nil {
		return err
	}
	if slices.Contains(req.GetUpdateMask().GetPaths(), "max_credential_ttl") {
		if ttl := i.GetMaxCredentialTtl(); ttl == nil || ttl.CheckValid() != nil {
			return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl must be a valid positive duration")
		}
	}
	if _, err := registry.ParseSourceRanges("integration.source_ranges", i.GetSourceRanges()); err != nil {
		return err
	}
	if err := validateOptionalReason(req.GetReason()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}

func validateListPartners(req *treatyv1.ListPartnersRequest) error {
	if err := validatePage(req.GetPageSize()); err != nil {
		return err
	}
	if t := req.GetContractEndBefore(); t != nil && t.CheckValid() != nil {
		return fail.Invalidf("contract_end_before", "contract_end_before is not a valid timestamp")
	}
	return nil // state, owner and tier are the domain's to check, which names the same fields
}

func validateListIntegrations(req *treatyv1.ListIntegrationsRequest) error {
	if err := validateFilteredPage("partner_id", req.GetPartnerId(), req.GetPageSize()); err != nil {
		return err
	}
	if env := req.GetEnvironment(); env != "" && !registry.ValidEnvironment(env) {
		return fail.Invalidf("environment", "environment %q must match ^[a-z][a-z0-9-]{0,31}$", env)
	}
	return nil
}

// basicView reports whether a workload read asks for the record only (WORKLOAD_VIEW_BASIC).
func basicView(v treatyv1.WorkloadView) (bool, error) {
	switch v {
	case treatyv1.WorkloadView_WORKLOAD_VIEW_UNSPECIFIED, treatyv1.WorkloadView_WORKLOAD_VIEW_FULL:
		return false, nil
	case treatyv1.WorkloadView_WORKLOAD_VIEW_BASIC:
		return true, nil
	}
	return false, fail.Invalidf("view", "view %d is not a WorkloadView (BASIC or FULL)", v)
}
