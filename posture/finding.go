// Package posture answers the questions auditors and incident responders ask of a partner
// inventory: which ex-partners still hold live credentials, which contracts ended without an
// offboarding, which integrations nobody owns, which secrets and keys are too old, which scopes are
// granted but unused, which workloads never act, which reviews are overdue, which workload spans
// environments, and where a high-risk partner authenticates weakly.
//
// Each rule reads plain input structs (see Input) and produces Findings, each mapped to the OWASP
// Non-Human Identities Top 10 (2025) item it is an instance of. The package knows nothing of
// gRPC or of where the inputs come from: the report service gathers them from the registry and the
// issuer's inventory, and Runner recomputes them on a schedule.
package posture

import (
	"fmt"
	"strings"
)

// Severity ranks a finding: how urgently a person should act on it.
type Severity int

// The severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

// String returns the lower-case name: "low", "medium", "high" or "critical".
func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity returns the severity named name (low, medium, high, critical).
func ParseSeverity(name string) (Severity, bool) {
	for s := Low; s <= Critical; s++ {
		if strings.EqualFold(s.String(), name) {
			return s, true
		}
	}
	return 0, false
}

// Risk is an item of the OWASP Non-Human Identities Top 10 (2025), for example "NHI1".
type Risk string

// The OWASP Non-Human Identities Top 10, 2025 edition.
const (
	NHI1  Risk = "NHI1"
	NHI2  Risk = "NHI2"
	NHI3  Risk = "NHI3"
	NHI4  Risk = "NHI4"
	NHI5  Risk = "NHI5"
	NHI6  Risk = "NHI6"
	NHI7  Risk = "NHI7"
	NHI8  Risk = "NHI8"
	NHI9  Risk = "NHI9"
	NHI10 Risk = "NHI10"
)

// Risks lists the OWASP NHI Top 10 in order.
var Risks = []Risk{NHI1, NHI2, NHI3, NHI4, NHI5, NHI6, NHI7, NHI8, NHI9, NHI10}

var riskTitles = map[Risk]string{
	NHI1:  "Improper Offboarding",
	NHI2:  "Secret Leakage",
	NHI3:  "Vulnerable Third-Party NHI",
	NHI4:  "Insecure Authentication",
	NHI5:  "Overprivileged NHI",
	NHI6:  "Insecure Cloud Deployment Configurations",
	NHI7:  "Long-Lived Secrets",
	NHI8:  "Environment Isolation",
	NHI9:  "NHI Reuse",
	NHI10: "Human Use of NHI",
}

// Title returns the item's title, for example "Improper Offboarding".
func (r Risk) Title() string { return riskTitles[r] }

// Label returns the item as OWASP cites it, for example "NHI1:2025 Improper Offboarding".
func (r Risk) Label() string { return string(r) + ":2025 " + r.Title() }

// Subject names what a finding is about. Only the fields that apply are set.
type Subject struct {
	PartnerID     string
	IntegrationID string
	WorkloadID    string
	// CredentialID names a client secret, a workload key (its thumbprint) or an issued credential
	// (its jti).
	CredentialID string
}

// String renders the subject as a path, most specific last, for example
// "partner/acme/integration/orders".
func (s Subject) String() string {
	var parts []string
	for _, p := range [...][2]string{
		{"partner", s.PartnerID}, {"integration", s.IntegrationID}, {"workload", s.WorkloadID}, {"credential", s.CredentialID},
	} {
		if p[1] != "" {
			parts = append(parts, p[0], p[1])
		}
	}
	return strings.Join(parts, "/")
}

// Finding is one posture problem.
type Finding struct {
	// ID identifies the finding across computations: the rule and the subject, so the same problem
	// keeps its id until it is fixed, and a new id means a new problem.
	ID string
	// Rule is the rule that found it, for example "ex_partner_live_credentials".
	Rule string
	// Severity ranks it.
	Severity Severity
	// Risk is the OWASP NHI Top 10 (2025) item it maps to.
	Risk Risk
	// Subject is what it is about.
	Subject Subject
	// Message says what is wrong and what to do, for a person.
	Message string
	// Evidence holds the facts it rests on, by name (counts, dates in RFC 3339, ids).
	Evidence map[string]string
}

// newFinding builds a finding and its id.
func newFinding(rule string, sev Severity, risk Risk, subj Subject, evidence map[string]string, format string, args ...any) Finding {
	return Finding{
		ID: rule + ":" + subj.String(), Rule: rule, Severity: sev, Risk: risk, Subject: subj,
		Message: fmt.Sprintf(format, args...), Evidence: evidence,
	}
}
