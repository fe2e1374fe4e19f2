package feed

import (
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/policy"
)

// Policies is a partner's current policy sets, compiled when the feed delivered them so that a
// decision never parses. A mode without a set has a nil Set, an empty ID and a zero version.
type Policies struct {
	PartnerID string
	// Live decides; Shadow is evaluated beside it and never changes an answer.
	Live, Shadow *policy.Set
	// LiveID and ShadowID are the registry's version ids (`PARTNER@VERSION`).
	LiveID, ShadowID string
	// LiveVersion and ShadowVersion are the registry's version numbers.
	LiveVersion, ShadowVersion uint64
}

// Policies returns the partner's current policy sets; false if the partner has none.
func (s *State) Policies(partnerID string) (*Policies, bool) { return s.policies.get(partnerID) }

// compilePolicy compiles a delivered policy set. Text that does not compile (the feed refuses it,
// so only an older feed read by a stricter Treaty holds such text) becomes a set that denies
// everything: policies only narrow access, so what cannot be understood fails closed.
func compilePolicy(partnerID, policyID, text string) *policy.Set {
	s, err := policy.Parse(partnerID, text)
	if err != nil {
		s = policy.Broken(partnerID, text)
	}
	if policyID == "" {
		return s
	}
	return s.WithID(policyID)
}

// changePolicies folds a PolicyChanged into p (nil for a partner without policies) and returns
// the result, nil when the partner has no set left.
func changePolicies(p *Policies, pc *treatyv1.PolicyChanged) *Policies {
	n := &Policies{PartnerID: pc.GetPartnerId()}
	if p != nil {
		*n = *p
	}
	var set *policy.Set
	if pc.GetText() != "" {
		set = compilePolicy(pc.GetPartnerId(), pc.GetPolicyId(), pc.GetText())
	}
	id, version := pc.GetPolicyId(), pc.GetVersion()
	if set == nil {
		id, version = "", 0
	}
	switch pc.GetMode() {
	case treatyv1.PolicyMode_POLICY_MODE_LIVE:
		n.Live, n.LiveID, n.LiveVersion = set, id, version
	case treatyv1.PolicyMode_POLICY_MODE_SHADOW:
		n.Shadow, n.ShadowID, n.ShadowVersion = set, id, version
	default:
		return p // a mode this Treaty does not know changes nothing
	}
	if n.Live == nil && n.Shadow == nil {
		return nil
	}
	return n
}

// policyRecords returns the PolicyChanged messages that rebuild p, live first.
func policyRecords(p *Policies) []*treatyv1.PolicyChanged {
	var out []*treatyv1.PolicyChanged
	if r := policyRecord(p, treatyv1.PolicyMode_POLICY_MODE_LIVE); r != nil {
		out = append(out, r)
	}
	if r := policyRecord(p, treatyv1.PolicyMode_POLICY_MODE_SHADOW); r != nil {
		out = append(out, r)
	}
	return out
}

// policyRecord returns the PolicyChanged that sets p's set of one mode, or nil if p has none.
func policyRecord(p *Policies, mode treatyv1.PolicyMode) *treatyv1.PolicyChanged {
	if p == nil {
		return nil
	}
	set, id, version := p.Live, p.LiveID, p.LiveVersion
	if mode == treatyv1.PolicyMode_POLICY_MODE_SHADOW {
		set, id, version = p.Shadow, p.ShadowID, p.ShadowVersion
	}
	if set == nil {
		return nil
	}
	return &treatyv1.PolicyChanged{PartnerId: p.PartnerID, Mode: mode, Version: version, Text: set.Text(), PolicyId: id}
}

// policyKey is the key of one mode's record in the policies bucket.
func policyKey(partnerID string, mode treatyv1.PolicyMode) string {
	return partnerID + "/" + policyModeName(mode)
}

func policyModeName(mode treatyv1.PolicyMode) string {
	if mode == treatyv1.PolicyMode_POLICY_MODE_SHADOW {
		return "shadow"
	}
	return "live"
}

// PolicyID returns the registry's id of a partner's policy version, `PARTNER@VERSION`.
func PolicyID(partnerID string, version uint64) string {
	return fmt.Sprintf("%s@%d", partnerID, version)
}

// checkPolicyChanged validates a PolicyChanged: the text must compile, so that a bad event never
// reaches a PDP.
func checkPolicyChanged(p *treatyv1.PolicyChanged) error {
	if err := fail.CheckID("policy_changed.partner_id", p.GetPartnerId()); err != nil {
		return err
	}
	switch p.GetMode() {
	case treatyv1.PolicyMode_POLICY_MODE_LIVE, treatyv1.PolicyMode_POLICY_MODE_SHADOW:
	default:
		return fail.Invalidf("policy_changed.mode", "policy_changed.mode must be live or shadow")
	}
	if p.GetText() == "" {
		return nil // removes the set of this mode
	}
	if p.GetVersion() == 0 || p.GetPolicyId() != PolicyID(p.GetPartnerId(), p.GetVersion()) {
		return fail.Invalidf("policy_changed.policy_id", "policy_changed.policy_id must be %q for version %d",
			PolicyID(p.GetPartnerId(), p.GetVersion()), p.GetVersion())
	}
	if _, err := policy.Parse(p.GetPartnerId(), p.GetText()); err != nil {
		var fe *fail.Error
		if errors.As(err, &fe) {
			return fail.Invalidf("policy_changed.text", "policy_changed.text: %s", fe.Msg)
		}
		return err
	}
	return nil
}
