package registrysvc

import (
	"strings"

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
	return registry.CheckActor("actor", req.GetActor())
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
	if env := i.GetEnvironment(); env != "" {
		if err := registry.CheckEnvironment("integration.environment", env); err != nil {
			return err
		}
	}
	if _, err := registry.ParseSourceRanges("integration.source_ranges", i.GetSourceRanges()); err != nil {
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
	return registry.CheckActor("actor", req.GetActor())
}

func validateAddWorkloadKey(req *treatyv1.AddWorkloadKeyRequest) error {
	if err := fail.CheckID("id", req.GetId()); err != nil {
		return err
	}
	if strings.TrimSpace(req.GetPublicKeyPem()) == "" {
		return fail.Invalidf("public_key_pem", "public_key_pem is required: the workload's new public key as PKIX PEM (-----BEGIN PUBLIC KEY-----)")
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
	return registry.CheckActor("actor", req.GetActor())
}

func validateRevokeClientSecret(req *treatyv1.RevokeClientSecretRequest) error {
	if err := fail.CheckID("workload_id", req.GetWorkloadId()); err != nil {
		return err
	}
	if err := fail.CheckID("secret_id", req.GetSecretId()); err != nil {
		return err
	}
	return registry.CheckActor("actor", req.GetActor())
}
