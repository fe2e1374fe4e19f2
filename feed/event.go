package feed

import (
	"fmt"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

var kindNames = map[treatyv1.TargetKind]string{
	treatyv1.TargetKind_TARGET_KIND_CREDENTIAL:  "credential",
	treatyv1.TargetKind_TARGET_KIND_WORKLOAD:    "workload",
	treatyv1.TargetKind_TARGET_KIND_INTEGRATION: "integration",
	treatyv1.TargetKind_TARGET_KIND_PARTNER:     "partner",
	treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY: "key",
}

// KindName returns the short name of a target kind as the CLI spells it: credential, workload,
// integration, partner or key.
func KindName(k treatyv1.TargetKind) string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "unknown"
}

// StateName returns the lower-case last word of a lifecycle enum value, as people write it:
// PARTNER_STATE_SUSPENDED is "suspended".
func StateName(state fmt.Stringer) string {
	name := state.String()
	return strings.ToLower(name[strings.LastIndexByte(name, '_')+1:])
}

// ParseKind parses a name returned by KindName.
func ParseKind(name string) (treatyv1.TargetKind, bool) {
	for k, n := range kindNames {
		if n == name {
			return k, true
		}
	}
	return treatyv1.TargetKind_TARGET_KIND_UNSPECIFIED, false
}

// Describe names what an event did and to what: kind is one of credential_revoked, blocked,
// restored, key_published, key_revoked, partner_changed, integration_changed, workload_changed,
// policy_changed, global_watermark; target is "kind/id", for example "partner/acme", or "all" for
// the global watermark, which reaches every credential.
func Describe(ev *treatyv1.Event) (kind, target string) {
	t := func(k treatyv1.TargetKind, id string) string { return KindName(k) + "/" + id }
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		return "credential_revoked", t(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, c.CredentialRevoked.GetJti())
	case *treatyv1.Event_Blocked:
		return "blocked", t(c.Blocked.GetTargetKind(), c.Blocked.GetTargetId())
	case *treatyv1.Event_Restored:
		return "restored", t(c.Restored.GetTargetKind(), c.Restored.GetTargetId())
	case *treatyv1.Event_SigningKeyPublished:
		return "key_published", t(treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, c.SigningKeyPublished.GetKid())
	case *treatyv1.Event_SigningKeyRevoked:
		return "key_revoked", t(treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, c.SigningKeyRevoked.GetKid())
	case *treatyv1.Event_PartnerChanged:
		return "partner_changed", t(treatyv1.TargetKind_TARGET_KIND_PARTNER, c.PartnerChanged.GetPartnerId())
	case *treatyv1.Event_IntegrationChanged:
		return "integration_changed", t(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, c.IntegrationChanged.GetIntegrationId())
	case *treatyv1.Event_WorkloadChanged:
		return "workload_changed", t(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, c.WorkloadChanged.GetWorkloadId())
	case *treatyv1.Event_PolicyChanged:
		return "policy_changed", t(treatyv1.TargetKind_TARGET_KIND_PARTNER, c.PolicyChanged.GetPartnerId())
	case *treatyv1.Event_GlobalWatermark:
		return "global_watermark", "all"
	}
	return "unknown", ""
}

// CheckTarget validates a target as named in a revocation: entities need a Treaty id, credentials
// and keys an opaque id of printable characters.
func CheckTarget(field string, kind treatyv1.TargetKind, id string) error {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD, treatyv1.TargetKind_TARGET_KIND_INTEGRATION, treatyv1.TargetKind_TARGET_KIND_PARTNER:
		return fail.CheckID(field, id)
	case treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY:
		return fail.CheckOpaqueID(field, id)
	}
	return fail.Invalidf("target_kind", "target_kind must be one of credential, workload, integration, partner, key")
}

// CheckChange validates the change an event carries before it is appended to the feed, so the
// feed never holds an event a follower cannot make sense of.
func CheckChange(ev *treatyv1.Event) error {
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		if err := fail.CheckOpaqueID("credential_revoked.jti", c.CredentialRevoked.GetJti()); err != nil {
			return err
		}
		if c.CredentialRevoked.GetExpireTime() == nil {
			return fail.Invalidf("credential_revoked.expire_time", "credential_revoked.expire_time is required")
		}
	case *treatyv1.Event_Blocked:
		return checkEntity("blocked", c.Blocked.GetTargetKind(), c.Blocked.GetTargetId())
	case *treatyv1.Event_Restored:
		return checkEntity("restored", c.Restored.GetTargetKind(), c.Restored.GetTargetId())
	case *treatyv1.Event_SigningKeyPublished:
		k := c.SigningKeyPublished
		if err := fail.CheckOpaqueID("signing_key_published.kid", k.GetKid()); err != nil {
			return err
		}
		if parsePublicJWK(k.GetPublicJwk()) == nil {
			return fail.Invalidf("signing_key_published.public_jwk", "signing_key_published.public_jwk must be a public JSON Web Key")
		}
		if k.GetIssuer() == "" || k.GetAlgorithm() == "" {
			return fail.Invalidf("signing_key_published", "signing_key_published needs issuer and algorithm")
		}
	case *treatyv1.Event_SigningKeyRevoked:
		return fail.CheckOpaqueID("signing_key_revoked.kid", c.SigningKeyRevoked.GetKid())
	case *treatyv1.Event_PartnerChanged:
		p := c.PartnerChanged
		if err := fail.CheckID("partner_changed.partner_id", p.GetPartnerId()); err != nil {
			return err
		}
		if p.GetState() == treatyv1.PartnerState_PARTNER_STATE_UNSPECIFIED || p.GetContractEndTime() == nil {
			return fail.Invalidf("partner_changed", "partner_changed needs state and contract_end_time")
		}
	case *treatyv1.Event_IntegrationChanged:
		i := c.IntegrationChanged
		if err := fail.CheckID("integration_changed.integration_id", i.GetIntegrationId()); err != nil {
			return err
		}
		if err := fail.CheckID("integration_changed.partner_id", i.GetPartnerId()); err != nil {
			return err
		}
		if i.GetState() == treatyv1.IntegrationState_INTEGRATION_STATE_UNSPECIFIED {
			return fail.Invalidf("integration_changed.state", "integration_changed.state is required")
		}
	case *treatyv1.Event_WorkloadChanged:
		w := c.WorkloadChanged
		for field, id := range map[string]string{
			"workload_changed.workload_id": w.GetWorkloadId(), "workload_changed.integration_id": w.GetIntegrationId(),
			"workload_changed.partner_id": w.GetPartnerId(),
		} {
			if err := fail.CheckID(field, id); err != nil {
				return err
			}
		}
		if w.GetState() == treatyv1.WorkloadState_WORKLOAD_STATE_UNSPECIFIED {
			return fail.Invalidf("workload_changed.state", "workload_changed.state is required")
		}
	case *treatyv1.Event_PolicyChanged:
		return checkPolicyChanged(c.PolicyChanged)
	case *treatyv1.Event_GlobalWatermark:
		if c.GlobalWatermark.GetBelowSequence() == 0 {
			return fail.Invalidf("global_watermark.below_sequence", "global_watermark.below_sequence must be positive")
		}
	default:
		return fail.Invalidf("event.change", "event carries no change")
	}
	return nil
}

func checkEntity(field string, kind treatyv1.TargetKind, id string) error {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD, treatyv1.TargetKind_TARGET_KIND_INTEGRATION, treatyv1.TargetKind_TARGET_KIND_PARTNER:
		return fail.CheckID(field+".target_id", id)
	}
	return fail.Invalidf(field+".target_kind", "%s.target_kind must be workload, integration or partner", field)
}
