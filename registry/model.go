package registry

import (
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// The governance model's names, parsers and checks (issue 6): relationship types, data
// classifications, environments, source ranges and the optional descriptive fields.

// CreateOptions are the options of CreatePartner and CreateIntegration.
type CreateOptions struct {
	// Activate approves and activates the new entity in the same transaction, with one audit
	// record: the audited one-step shortcut for small deployments. ApprovedBy is then required.
	Activate bool
	// ApprovedBy is who approved the entity, with Activate.
	ApprovedBy string
	// Reason is why the entity is created, for the audit trail; optional (checked like any reason
	// when given). Without it the record says what happened.
	Reason string
}

// createOptions folds the variadic options of a create into one; the last one given wins.
func createOptions(opts []CreateOptions) CreateOptions {
	if len(opts) == 0 {
		return CreateOptions{}
	}
	return opts[len(opts)-1]
}

// check validates the options: with Activate, ApprovedBy is required.
func (o CreateOptions) check() error {
	if err := checkOptionalReason(o.Reason); err != nil {
		return err
	}
	if !o.Activate {
		if o.ApprovedBy != "" {
			return fail.Invalidf("approved_by", "approved_by is only taken with activate; approve separately otherwise")
		}
		return nil
	}
	if err := CheckName("approved_by", o.ApprovedBy); err != nil {
		return fail.Invalidf("approved_by", "approved_by is required with activate: who approved it, for the audit trail")
	}
	return nil
}

// maxEnvironment bounds an environment name; envPattern is its form.
var envPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidEnvironment reports whether env is a well-formed environment name such as "production".
func ValidEnvironment(env string) bool { return envPattern.MatchString(env) }

// CheckEnvironment validates a required environment name.
func CheckEnvironment(field, env string) error {
	if env == "" {
		return fail.Invalidf(field, "%s is required: the one environment its credentials are valid in, for example production, staging or test", field)
	}
	if !ValidEnvironment(env) {
		return fail.Invalidf(field, "%s %q must match ^[a-z][a-z0-9-]{0,31}$, for example production", field, env)
	}
	return nil
}

// maxSourceRanges bounds the source ranges of one integration.
const maxSourceRanges = 64

// ParseSourceRanges parses CIDR prefixes (for example "203.0.113.0/24"), masking them to their
// network address; field names the request field in errors.
func ParseSourceRanges(field string, ranges []string) ([]netip.Prefix, error) {
	if len(ranges) > maxSourceRanges {
		return nil, fail.Invalidf(field, "%s has %d entries; at most %d are allowed", field, len(ranges), maxSourceRanges)
	}
	if len(ranges) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(ranges))
	for i, s := range ranges {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fail.Invalidf(field, "%s[%d] %q is not a CIDR prefix such as 203.0.113.0/24", field, i, s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RangeStrings renders source ranges as CIDR strings.
func RangeStrings(ranges []netip.Prefix) []string {
	if len(ranges) == 0 {
		return nil
	}
	out := make([]string, len(ranges))
	for i, p := range ranges {
		out[i] = p.String()
	}
	return out
}

// checkOptionalText validates an optional human-readable field.
func checkOptionalText(field, s string) error {
	if s == "" {
		return nil
	}
	return checkText(field, s, maxNameRunes)
}

// checkOptionalTime refuses times a record cannot hold.
func checkOptionalTime(field string, t time.Time) error {
	if !t.IsZero() && (t.Year() < 1 || t.Year() > 9999) {
		return fail.Invalidf(field, "%s must be between the years 1 and 9999", field)
	}
	return nil
}

// RelationshipName returns the lower-case name of a relationship type, for example "saas".
func RelationshipName(t treatyv1.RelationshipType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "RELATIONSHIP_TYPE_"))
}

// ParseRelationship returns the relationship type named name (vendor, saas,
// managed_service_provider, data_sharing, embedded_sdk; dashes are taken for underscores).
func ParseRelationship(name string) (treatyv1.RelationshipType, bool) {
	v, ok := treatyv1.RelationshipType_value["RELATIONSHIP_TYPE_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))]
	if !ok || v == 0 {
		return 0, false
	}
	return treatyv1.RelationshipType(v), true
}

// ClassificationName returns the lower-case name of a data classification, for example
// "confidential".
func ClassificationName(c treatyv1.DataClassification) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "DATA_CLASSIFICATION_"))
}

// ParseClassification returns the data classification named name (public, internal,
// confidential, restricted).
func ParseClassification(name string) (treatyv1.DataClassification, bool) {
	v, ok := treatyv1.DataClassification_value["DATA_CLASSIFICATION_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return 0, false
	}
	return treatyv1.DataClassification(v), true
}

// checkPartnerDescriptive validates the optional governance fields of a partner.
func checkPartnerDescriptive(p Partner) error {
	for _, f := range []struct{ field, value string }{
		{"partner.legal_name", p.LegalName},
		{"partner.accountable_owner", p.AccountableOwner},
		{"partner.backup_owner", p.BackupOwner},
		{"partner.security_contact", p.SecurityContact},
		{"partner.contract_id", p.ContractID},
		{"partner.last_assessment_result", p.LastAssessmentResult},
	} {
		if err := checkOptionalText(f.field, f.value); err != nil {
			return err
		}
	}
	if _, ok := treatyv1.RelationshipType_name[int32(p.RelationshipType)]; !ok {
		return fail.Invalidf("partner.relationship_type", "partner.relationship_type must be vendor, saas, managed_service_provider, data_sharing or embedded_sdk")
	}
	if _, ok := treatyv1.DataClassification_name[int32(p.DataClassification)]; !ok {
		return fail.Invalidf("partner.data_classification", "partner.data_classification must be public, internal, confidential or restricted")
	}
	if p.BreachNoticeHours < 0 {
		return fail.Invalidf("partner.breach_notice_hours", "partner.breach_notice_hours must not be negative")
	}
	for _, f := range []struct {
		field string
		t     time.Time
	}{
		{"partner.contract_start_time", p.ContractStart},
		{"partner.last_assessment_time", p.LastAssessment},
		{"partner.next_review_time", p.NextReview},
	} {
		if err := checkOptionalTime(f.field, f.t); err != nil {
			return err
		}
	}
	if !p.ContractStart.IsZero() && !p.ContractEnd.IsZero() && !p.ContractStart.Before(p.ContractEnd) {
		return fail.Invalidf("partner.contract_start_time", "partner.contract_start_time must be before partner.contract_end_time")
	}
	return nil
}

// checkIntegrationDescriptive validates the optional governance fields of an integration.
func checkIntegrationDescriptive(i Integration) error {
	for _, f := range []struct{ field, value string }{
		{"integration.purpose", i.Purpose},
		{"integration.owner", i.Owner},
		{"integration.approval_ticket", i.ApprovalTicket},
	} {
		if err := checkOptionalText(f.field, f.value); err != nil {
			return err
		}
	}
	if len(i.SourceRanges) > maxSourceRanges {
		return fail.Invalidf("integration.source_ranges", "integration.source_ranges has %d entries; at most %d are allowed", len(i.SourceRanges), maxSourceRanges)
	}
	for n, p := range i.SourceRanges {
		if !p.IsValid() {
			return fail.Invalidf("integration.source_ranges", "integration.source_ranges[%d] is not a valid CIDR prefix", n)
		}
	}
	return nil
}

// reason is the audit reason of a create: the caller's reason, the one-step approval (or both), or
// def when there is neither.
func (o CreateOptions) reason(def string) string {
	switch {
	case o.Activate && o.Reason != "":
		return o.Reason + "; " + approvalSummary(o.ApprovedBy)
	case o.Activate:
		return approvalSummary(o.ApprovedBy)
	}
	r, _ := optionalReason(o.Reason, def) // checked by check
	return r
}
