package posture

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Defaults of Config.
const (
	DefaultMaxSecretAge     = 90 * 24 * time.Hour
	DefaultMaxKeyAge        = 90 * 24 * time.Hour
	DefaultUsageWindow      = 30 * 24 * time.Hour
	DefaultOffboardingGrace = 7 * 24 * time.Hour
)

const day = 24 * time.Hour

// The rules' names, as Finding.Rule carries them.
const (
	ruleExPartnerLive    = "ex_partner_live_credentials"
	ruleContractEnded    = "contract_ended_not_offboarded"
	ruleOffboardingStuck = "offboarding_not_completed"
	ruleNoOwner          = "integration_without_owner"
	ruleSecretAge        = "client_secret_too_old"
	ruleKeyAge           = "workload_key_too_old"
	ruleOutlivesTTL      = "credential_outlives_max_ttl"
	ruleUnusedScopes     = "granted_scopes_unused"
	ruleDormantWorkload  = "workload_never_used"
	ruleUnusedSecret     = "client_secret_never_used"
	ruleReviewOverdue    = "review_overdue"
	ruleCrossEnvironment = "workload_across_environments"
	ruleSecretHighTier   = "client_secret_for_high_risk_partner"
	ruleBearerCritical   = "bearer_tokens_for_critical_partner"
)

// Rules lists the rule names Evaluate runs, in the order it runs them.
var Rules = []string{
	ruleExPartnerLive, ruleContractEnded, ruleOffboardingStuck, ruleNoOwner, ruleSecretAge, ruleKeyAge,
	ruleOutlivesTTL, ruleUnusedScopes, ruleDormantWorkload, ruleUnusedSecret, ruleReviewOverdue,
	ruleCrossEnvironment, ruleSecretHighTier, ruleBearerCritical,
}

// Config holds the thresholds of the rules. Zero fields take the defaults.
type Config struct {
	// MaxSecretAge is the age past which a live client secret is a finding.
	MaxSecretAge time.Duration
	// MaxKeyAge is the age past which a workload's registered key is a finding.
	MaxKeyAge time.Duration
	// UsageWindow is both the dormancy window (a workload or secret with nothing used in it is
	// a finding) and the window granted scopes must have been used in.
	UsageWindow time.Duration
	// OffboardingGrace is how long a partner may stay OFFBOARDING past its contract end before it
	// is a finding.
	OffboardingGrace time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.MaxSecretAge, DefaultMaxSecretAge)
	set(&c.MaxKeyAge, DefaultMaxKeyAge)
	set(&c.UsageWindow, DefaultUsageWindow)
	set(&c.OffboardingGrace, DefaultOffboardingGrace)
	return c
}

// Validate checks that no threshold is negative.
func (c Config) Validate() error {
	for name, d := range map[string]time.Duration{
		"MaxSecretAge": c.MaxSecretAge, "MaxKeyAge": c.MaxKeyAge, "UsageWindow": c.UsageWindow, "OffboardingGrace": c.OffboardingGrace,
	} {
		if d < 0 {
			return fmt.Errorf("posture: %s %s is negative", name, d)
		}
	}
	return nil
}

// Result is one computation of the findings.
type Result struct {
	// Time is the instant they were computed for.
	Time time.Time
	// Findings are ordered by severity (critical first), then id.
	Findings []Finding
	// Notes say what could not be checked, and why.
	Notes []string
}

// Evaluate runs every rule over in and returns the findings.
func Evaluate(in Input, cfg Config) Result {
	cfg = cfg.WithDefaults()
	x := newIndex(in)
	res := Result{Time: in.Now}
	add := func(fs ...Finding) { res.Findings = append(res.Findings, fs...) }
	usage := in.Inventory != nil && !in.Inventory.Truncated
	switch {
	case in.Inventory == nil:
		res.Notes = append(res.Notes, "the issuer's inventory could not be read: live credentials, usage and age of issued credentials were not checked")
	case in.Inventory.Truncated:
		res.Notes = append(res.Notes, "the issuer's inventory holds more credentials in the usage window than one report reads: granted-but-unused scopes and never-used workloads and secrets were not checked, and live counts may be low")
	}
	if in.Inventory != nil {
		add(exPartnerLive(x)...)
		add(credentialOutlivesTTL(x)...)
	}
	add(contractEnded(x, cfg)...)
	add(noOwner(x)...)
	add(secretAge(x, cfg)...)
	add(keyAge(x, cfg)...)
	if usage {
		add(unusedScopes(x, cfg)...)
		add(dormant(x, cfg)...)
	}
	add(reviewOverdue(x)...)
	add(crossEnvironment(x)...)
	add(weakAuth(x)...)
	slices.SortFunc(res.Findings, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return res
}

// index holds the input with lookups by id.
type index struct {
	in           Input
	now          time.Time
	partners     map[string]*Partner
	integrations map[string]*Integration
	workloads    map[string]*Workload
	stats        map[string]*CredentialStats // by workload id
	secrets      map[string][]ClientSecret   // by workload id
}

func newIndex(in Input) *index {
	x := &index{
		in: in, now: in.Now, partners: map[string]*Partner{}, integrations: map[string]*Integration{},
		workloads: map[string]*Workload{}, stats: map[string]*CredentialStats{}, secrets: map[string][]ClientSecret{},
	}
	for i := range in.Partners {
		x.partners[in.Partners[i].ID] = &in.Partners[i]
	}
	for i := range in.Integrations {
		x.integrations[in.Integrations[i].ID] = &in.Integrations[i]
	}
	for i := range in.Workloads {
		x.workloads[in.Workloads[i].ID] = &in.Workloads[i]
	}
	for _, s := range in.Secrets {
		x.secrets[s.WorkloadID] = append(x.secrets[s.WorkloadID], s)
	}
	if in.Inventory != nil {
		for i := range in.Inventory.Workloads {
			s := &in.Inventory.Workloads[i]
			x.stats[s.WorkloadID] = s
		}
	}
	return x
}

// gone reports whether a partner is offboarding or terminated: its workloads, keys and secrets
// are the offboarding's business (ex_partner_live_credentials), not findings of their own.
func (x *index) gone(partnerID string) bool {
	p := x.partners[partnerID]
	return p != nil && (p.State == partnerOffboarding || p.State == partnerTerminated)
}

// tier returns a partner's risk tier, or UNSPECIFIED if the partner is unknown.
func (x *index) tier(partnerID string) treatyv1.RiskTier {
	if p := x.partners[partnerID]; p != nil {
		return p.RiskTier
	}
	return treatyv1.RiskTier_RISK_TIER_UNSPECIFIED
}

var (
	partnerOffboarding = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
	partnerTerminated  = treatyv1.PartnerState_PARTNER_STATE_TERMINATED
	integrationRetired = treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED
	workloadActive     = treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE
	workloadRetired    = treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED
	integrationActive  = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
)

// stateName renders an enum as its lower-case name without prefix: "offboarding".
func stateName(s fmt.Stringer) string {
	name := s.String()
	for _, p := range []string{"PARTNER_STATE_", "INTEGRATION_STATE_", "WORKLOAD_STATE_", "RISK_TIER_", "SENDER_CONSTRAINT_", "CLIENT_AUTH_METHOD_"} {
		name = strings.TrimPrefix(name, p)
	}
	return strings.ToLower(name)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func days(d time.Duration) int { return int(d / day) }

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

// exPartnerLive: a partner being offboarded or terminated still has live credentials.
func exPartnerLive(x *index) []Finding {
	live := map[string]uint64{}
	for _, s := range x.in.Inventory.Workloads {
		live[s.PartnerID] += s.Live
	}
	var out []Finding
	for _, p := range x.in.Partners {
		n := live[p.ID]
		if n == 0 || (p.State != partnerOffboarding && p.State != partnerTerminated) {
			continue
		}
		out = append(out, newFinding(ruleExPartnerLive, Critical, NHI1, Subject{PartnerID: p.ID},
			map[string]string{"state": stateName(p.State), "live_credentials": u64(n), "contract_end": ts(p.ContractEnd)},
			"partner %q is %s but %d of its credentials are still live; revoke them (treaty revoke partner %s) and confirm none is left",
			p.ID, stateName(p.State), n, p.ID))
	}
	return out
}

// contractEnded: the contract ended but the partner was not moved to offboarding, or has been
// offboarding for longer than the grace period.
func contractEnded(x *index, cfg Config) []Finding {
	var out []Finding
	for _, p := range x.in.Partners {
		if p.ContractEnd.IsZero() || p.ContractEnd.After(x.now) || p.State == partnerTerminated {
			continue
		}
		ev := map[string]string{"state": stateName(p.State), "contract_end": ts(p.ContractEnd),
			"days_past": strconv.Itoa(days(x.now.Sub(p.ContractEnd)))}
		if p.State != partnerOffboarding {
			out = append(out, newFinding(ruleContractEnded, High, NHI1, Subject{PartnerID: p.ID}, ev,
				"partner %q's contract ended on %s but it is still %s; offboard it, or record the renewed contract",
				p.ID, p.ContractEnd.UTC().Format(time.DateOnly), stateName(p.State)))
			continue
		}
		if x.now.Sub(p.ContractEnd) > cfg.OffboardingGrace {
			out = append(out, newFinding(ruleOffboardingStuck, Medium, NHI1, Subject{PartnerID: p.ID}, ev,
				"partner %q has been offboarding for %d days since its contract ended; confirm no credential is live and terminate it",
				p.ID, days(x.now.Sub(p.ContractEnd))))
		}
	}
	return out
}

// noOwner: a non-retired integration under a partner that is not terminated has no owner.
func noOwner(x *index) []Finding {
	var out []Finding
	for _, in := range x.in.Integrations {
		if in.State == integrationRetired || strings.TrimSpace(in.Owner) != "" {
			continue
		}
		if p := x.partners[in.PartnerID]; p != nil && p.State == partnerTerminated {
			continue
		}
		ev := map[string]string{"state": stateName(in.State)}
		if p := x.partners[in.PartnerID]; p != nil && p.OwnerTeam != "" {
			ev["partner_owner_team"] = p.OwnerTeam
		}
		out = append(out, newFinding(ruleNoOwner, Medium, NHI1, Subject{PartnerID: in.PartnerID, IntegrationID: in.ID}, ev,
			"integration %q has no owner: nobody answers for its credentials or will retire it; set its owner",
			in.ID))
	}
	return out
}

// secretAge: a live client secret older than the maximum age.
func secretAge(x *index, cfg Config) []Finding {
	var out []Finding
	for _, s := range x.in.Secrets {
		age := x.now.Sub(s.Created)
		w := x.workloads[s.WorkloadID]
		if !s.Live(x.now) || age <= cfg.MaxSecretAge || (w != nil && x.gone(w.PartnerID)) {
			continue
		}
		subj := Subject{WorkloadID: s.WorkloadID, CredentialID: s.ID}
		if w != nil {
			subj.PartnerID, subj.IntegrationID = w.PartnerID, w.IntegrationID
		}
		out = append(out, newFinding(ruleSecretAge, High, NHI7, subj,
			map[string]string{"created": ts(s.Created), "expires": ts(s.Expires), "age_days": strconv.Itoa(days(age)),
				"max_age_days": strconv.Itoa(days(cfg.MaxSecretAge))},
			"client secret %s of workload %q is %d days old (more than %d); create a new one, switch the partner to it, then revoke this one",
			s.ID, s.WorkloadID, days(age), days(cfg.MaxSecretAge)))
	}
	return out
}

// keyAge: a registered key of a workload that is not retired, older than the maximum age.
func keyAge(x *index, cfg Config) []Finding {
	var out []Finding
	for _, w := range x.in.Workloads {
		if w.State == workloadRetired || x.gone(w.PartnerID) {
			continue
		}
		for _, k := range w.Keys {
			age := x.now.Sub(k.Registered)
			if k.Registered.IsZero() || age <= cfg.MaxKeyAge {
				continue
			}
			out = append(out, newFinding(ruleKeyAge, Medium, NHI7,
				Subject{PartnerID: w.PartnerID, IntegrationID: w.IntegrationID, WorkloadID: w.ID, CredentialID: k.ID},
				map[string]string{"registered": ts(k.Registered), "age_days": strconv.Itoa(days(age)), "max_age_days": strconv.Itoa(days(cfg.MaxKeyAge))},
				"key %s of workload %q was registered %d days ago (more than %d); rotate it: add the new key, switch, remove this one",
				k.ID, w.ID, days(age), days(cfg.MaxKeyAge)))
		}
	}
	return out
}

// credentialOutlivesTTL: a live credential older than its integration's current maximum TTL (the
// TTL was lowered after it was issued, or it was issued under a longer global maximum).
func credentialOutlivesTTL(x *index) []Finding {
	var out []Finding
	for _, s := range x.in.Inventory.Workloads {
		in := x.integrations[s.IntegrationID]
		if s.Live == 0 || s.OldestLiveIssued.IsZero() || in == nil || in.MaxTTL <= 0 {
			continue
		}
		age := x.now.Sub(s.OldestLiveIssued)
		if age <= in.MaxTTL {
			continue
		}
		out = append(out, newFinding(ruleOutlivesTTL, High, NHI7,
			Subject{PartnerID: s.PartnerID, IntegrationID: s.IntegrationID, WorkloadID: s.WorkloadID, CredentialID: s.OldestLiveID},
			map[string]string{"issued": ts(s.OldestLiveIssued), "age": age.Round(time.Second).String(), "max_ttl": in.MaxTTL.String(),
				"live_credentials": u64(s.Live)},
			"credential %s of workload %q has been live for %s, longer than integration %q now allows (%s); revoke it (treaty revoke credential %s)",
			s.OldestLiveID, s.WorkloadID, age.Round(time.Second), in.ID, in.MaxTTL, s.OldestLiveID))
	}
	return out
}

// unusedScopes: an active integration, older than the usage window, grants scopes that no
// credential a decision point allowed in the window carried.
func unusedScopes(x *index, cfg Config) []Finding {
	seen := map[string]map[string]bool{} // integration -> scope
	for _, s := range x.in.Inventory.Workloads {
		m := seen[s.IntegrationID]
		if m == nil {
			m = map[string]bool{}
			seen[s.IntegrationID] = m
		}
		for _, sc := range s.ScopesSeen {
			m[sc] = true
		}
	}
	var out []Finding
	for _, in := range x.in.Integrations {
		if in.State != integrationActive || x.now.Sub(in.Created) < cfg.UsageWindow {
			continue
		}
		var unused []string
		for _, sc := range in.Scopes {
			if !seen[in.ID][sc] {
				unused = append(unused, sc)
			}
		}
		if len(unused) == 0 {
			continue
		}
		slices.Sort(unused)
		out = append(out, newFinding(ruleUnusedScopes, Medium, NHI5, Subject{PartnerID: in.PartnerID, IntegrationID: in.ID},
			map[string]string{"unused_scopes": strings.Join(unused, " "), "granted_scopes": strings.Join(in.Scopes, " "),
				"window_days": strconv.Itoa(days(cfg.UsageWindow)), "since": ts(x.in.Inventory.Since)},
			"integration %q was granted %d scopes no used credential carried in %d days (%s); remove them from its allowed scopes",
			in.ID, len(unused), days(cfg.UsageWindow), strings.Join(unused, " ")))
	}
	return out
}

// dormant: an active workload older than the usage window with no credential seen in it, and a
// live client secret with which no credential was issued in the window.
func dormant(x *index, cfg Config) []Finding {
	var out []Finding
	for _, w := range x.in.Workloads {
		if w.State != workloadActive || x.now.Sub(w.Created) < cfg.UsageWindow || x.gone(w.PartnerID) {
			continue
		}
		last := w.LastUsed
		if s := x.stats[w.ID]; s != nil && s.LastSeen.After(last) {
			last = s.LastSeen
		}
		if !last.IsZero() && x.now.Sub(last) < cfg.UsageWindow {
			continue
		}
		ev := map[string]string{"created": ts(w.Created), "window_days": strconv.Itoa(days(cfg.UsageWindow))}
		if !last.IsZero() {
			ev["last_used"] = ts(last)
		}
		out = append(out, newFinding(ruleDormantWorkload, Medium, NHI1, Subject{PartnerID: w.PartnerID, IntegrationID: w.IntegrationID, WorkloadID: w.ID}, ev,
			"workload %q has not used a credential in %d days; retire it if the partner no longer needs it",
			w.ID, days(cfg.UsageWindow)))
	}
	for _, s := range x.in.Secrets {
		w := x.workloads[s.WorkloadID]
		if !s.Live(x.now) || x.now.Sub(s.Created) < cfg.UsageWindow || w == nil || x.gone(w.PartnerID) {
			continue
		}
		if st := x.stats[s.WorkloadID]; st != nil && slices.ContainsFunc(st.AuthMethods, func(m string) bool { return strings.HasPrefix(m, "client_secret_") }) {
			continue
		}
		out = append(out, newFinding(ruleUnusedSecret, Medium, NHI2, Subject{PartnerID: w.PartnerID, IntegrationID: w.IntegrationID, WorkloadID: w.ID, CredentialID: s.ID},
			map[string]string{"created": ts(s.Created), "expires": ts(s.Expires), "window_days": strconv.Itoa(days(cfg.UsageWindow))},
			"client secret %s of workload %q is live but no credential was obtained with a client secret in %d days; revoke it",
			s.ID, w.ID, days(cfg.UsageWindow)))
	}
	return out
}

// reviewOverdue: a partner that is not terminated whose next review date has passed.
func reviewOverdue(x *index) []Finding {
	var out []Finding
	for _, p := range x.in.Partners {
		if p.NextReview.IsZero() || p.NextReview.After(x.now) || p.State == partnerTerminated || p.State == partnerOffboarding {
			continue
		}
		sev := Medium
		if p.RiskTier >= treatyv1.RiskTier_RISK_TIER_HIGH {
			sev = High
		}
		ev := map[string]string{"next_review": ts(p.NextReview), "days_overdue": strconv.Itoa(days(x.now.Sub(p.NextReview))),
			"risk_tier": stateName(p.RiskTier)}
		if p.AccountableOwner != "" {
			ev["accountable_owner"] = p.AccountableOwner
		}
		out = append(out, newFinding(ruleReviewOverdue, sev, NHI3, Subject{PartnerID: p.ID}, ev,
			"partner %q (%s risk) was due for review on %s; reassess it and set its next review date",
			p.ID, stateName(p.RiskTier), p.NextReview.UTC().Format(time.DateOnly)))
	}
	return out
}

// crossEnvironment: one identity acting for workloads whose integrations are in different
// environments. Registered keys are unique per workload (the registry refuses a key twice), so
// the identity is a registered TLS client certificate subject, or a DPoP key or certificate
// thumbprint that credentials of several workloads were bound to.
func crossEnvironment(x *index) []Finding {
	type holder struct{ workload, env string }
	groups := map[string][]holder{} // "kind=value" -> holders
	envOf := func(w *Workload) string {
		if in := x.integrations[w.IntegrationID]; in != nil {
			return in.Environment
		}
		return ""
	}
	for i := range x.in.Workloads {
		w := &x.in.Workloads[i]
		if w.State == workloadRetired {
			continue
		}
		if w.TLSSubject != "" {
			groups["tls_subject="+w.TLSSubject] = append(groups["tls_subject="+w.TLSSubject], holder{w.ID, envOf(w)})
		}
		if s := x.stats[w.ID]; s != nil {
			for _, tp := range s.BindingThumbprints {
				groups["binding_thumbprint="+tp] = append(groups["binding_thumbprint="+tp], holder{w.ID, envOf(w)})
			}
		}
	}
	var out []Finding
	for key, hs := range groups {
		envs := map[string]bool{}
		for _, h := range hs {
			if h.env != "" {
				envs[h.env] = true
			}
		}
		if len(envs) < 2 {
			continue
		}
		kind, value, _ := strings.Cut(key, "=")
		ids := make([]string, 0, len(hs))
		for _, h := range hs {
			ids = append(ids, h.workload)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		envList := make([]string, 0, len(envs))
		for e := range envs {
			envList = append(envList, e)
		}
		slices.Sort(envList)
		first := x.workloads[ids[0]]
		subj := Subject{PartnerID: first.PartnerID, WorkloadID: ids[0], CredentialID: value}
		f := newFinding(ruleCrossEnvironment, High, NHI8, subj,
			map[string]string{"identity": kind, kind: value, "workloads": strings.Join(ids, " "), "environments": strings.Join(envList, " ")},
			"one identity (%s %s) acts for workloads %s in environments %s; give each environment its own key or certificate",
			strings.ReplaceAll(kind, "_", " "), value, strings.Join(ids, ", "), strings.Join(envList, ", "))
		out = append(out, f)
	}
	return out
}

// weakAuth: a high or critical partner's integration that allows client secrets, and a critical
// partner's integration whose tokens need no sender constraint.
func weakAuth(x *index) []Finding {
	var out []Finding
	var bearer map[string]uint64 // live bearer credentials by integration, computed once if needed
	for _, in := range x.in.Integrations {
		p := x.partners[in.PartnerID]
		if in.State == integrationRetired || p == nil || p.State == partnerTerminated || p.RiskTier < treatyv1.RiskTier_RISK_TIER_HIGH {
			continue
		}
		subj := Subject{PartnerID: in.PartnerID, IntegrationID: in.ID}
		var secrets []string
		for _, m := range in.AuthMethods {
			if m == treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC || m == treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST {
				secrets = append(secrets, stateName(m))
			}
		}
		if len(secrets) > 0 {
			sev := High
			if p.RiskTier == treatyv1.RiskTier_RISK_TIER_CRITICAL {
				sev = Critical
			}
			out = append(out, newFinding(ruleSecretHighTier, sev, NHI4, subj,
				map[string]string{"risk_tier": stateName(p.RiskTier), "client_secret_methods": strings.Join(secrets, " ")},
				"integration %q of %s-risk partner %q allows client secrets (%s); allow only private_key_jwt or mTLS and revoke its secrets",
				in.ID, stateName(p.RiskTier), p.ID, strings.Join(secrets, ", ")))
		}
		if p.RiskTier == treatyv1.RiskTier_RISK_TIER_CRITICAL &&
			(in.SenderConstraint == treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE || in.SenderConstraint == treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED) {
			ev := map[string]string{"risk_tier": stateName(p.RiskTier), "sender_constraint": "none"}
			if x.in.Inventory != nil {
				if bearer == nil {
					bearer = map[string]uint64{}
					for _, s := range x.in.Inventory.Workloads {
						bearer[s.IntegrationID] += s.LiveBearer
					}
				}
				ev["live_bearer_credentials"] = u64(bearer[in.ID])
			}
			out = append(out, newFinding(ruleBearerCritical, High, NHI4, subj, ev,
				"integration %q of critical-risk partner %q issues bearer tokens usable by whoever holds them; require DPoP or mTLS (sender constraint)",
				in.ID, p.ID))
		}
	}
	return out
}
