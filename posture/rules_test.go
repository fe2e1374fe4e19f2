package posture_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// fixture is an inventory without a single finding: every rule's case below changes one thing.
func fixture() posture.Input {
	return posture.Input{
		Now: now,
		Partners: []posture.Partner{
			{ID: "acme", DisplayName: "Acme", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, RiskTier: treatyv1.RiskTier_RISK_TIER_MEDIUM,
				OwnerTeam: "payments", AccountableOwner: "alice@example.com", ContractEnd: now.Add(180 * day), NextReview: now.Add(30 * day)},
			{ID: "bigbank", DisplayName: "Big Bank", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, RiskTier: treatyv1.RiskTier_RISK_TIER_CRITICAL,
				OwnerTeam: "treasury", ContractEnd: now.Add(365 * day), NextReview: now.Add(60 * day)},
		},
		Integrations: []posture.Integration{
			{ID: "acme-orders", PartnerID: "acme", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, Owner: "alice@example.com",
				Environment: "production", Scopes: []string{"orders.read", "orders.write"}, MaxTTL: time.Hour,
				AuthMethods:      []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT, treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC},
				SenderConstraint: treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE, Created: now.Add(-100 * day)},
			{ID: "bank-pay", PartnerID: "bigbank", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, Owner: "bob@example.com",
				Environment: "production", Scopes: []string{"pay.write"}, MaxTTL: 15 * time.Minute,
				AuthMethods:      []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT},
				SenderConstraint: treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP, Created: now.Add(-100 * day)},
		},
		Workloads: []posture.Workload{
			{ID: "orders-1", IntegrationID: "acme-orders", PartnerID: "acme", State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE,
				Created: now.Add(-90 * day), Keys: []posture.Key{{ID: "k1", Registered: now.Add(-10 * day)}}},
			{ID: "pay-1", IntegrationID: "bank-pay", PartnerID: "bigbank", State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE,
				Created: now.Add(-90 * day), Keys: []posture.Key{{ID: "k2", Registered: now.Add(-20 * day)}}},
		},
		Secrets: []posture.ClientSecret{
			{ID: "cs-1", WorkloadID: "orders-1", Created: now.Add(-10 * day), Expires: now.Add(20 * day)},
		},
		Inventory: &posture.Inventory{
			Since: now.Add(-30 * day),
			Workloads: []posture.CredentialStats{
				{WorkloadID: "orders-1", IntegrationID: "acme-orders", PartnerID: "acme", Live: 2, LiveBearer: 2,
					OldestLiveIssued: now.Add(-30 * time.Minute), OldestLiveID: "jti-a", LastIssued: now.Add(-time.Minute), LastSeen: now.Add(-time.Hour),
					ScopesSeen: []string{"orders.read", "orders.write"}, AuthMethods: []string{"client_secret_basic", "private_key_jwt"}},
				{WorkloadID: "pay-1", IntegrationID: "bank-pay", PartnerID: "bigbank", Live: 1,
					OldestLiveIssued: now.Add(-5 * time.Minute), OldestLiveID: "jti-b", LastIssued: now.Add(-5 * time.Minute), LastSeen: now.Add(-time.Minute),
					ScopesSeen: []string{"pay.write"}, AuthMethods: []string{"private_key_jwt"}, BindingThumbprints: []string{"tp-1"}},
			},
		},
	}
}

// Finding ids of the fixture's entities.
const (
	acme       = "partner/acme"
	ordersInt  = "partner/acme/integration/acme-orders"
	orders1    = "partner/acme/integration/acme-orders/workload/orders-1"
	bankPayInt = "partner/bigbank/integration/bank-pay"
)

func TestRules(t *testing.T) {
	partner := func(in *posture.Input, id string) *posture.Partner {
		for i := range in.Partners {
			if in.Partners[i].ID == id {
				return &in.Partners[i]
			}
		}
		t.Fatalf("no partner %s", id)
		return nil
	}
	stats := func(in *posture.Input, id string) *posture.CredentialStats {
		for i := range in.Inventory.Workloads {
			if in.Inventory.Workloads[i].WorkloadID == id {
				return &in.Inventory.Workloads[i]
			}
		}
		t.Fatalf("no stats for %s", id)
		return nil
	}
	// staging adds a second acme integration in staging with one workload, too young for the
	// usage rules.
	staging := func(in *posture.Input, tls string) {
		in.Integrations = append(in.Integrations, posture.Integration{
			ID: "acme-orders-stg", PartnerID: "acme", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, Owner: "alice@example.com",
			Environment: "staging", Scopes: []string{"orders.read"}, MaxTTL: time.Hour, Created: now.Add(-day),
			AuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_TLS_CLIENT_AUTH},
		})
		in.Workloads = append(in.Workloads, posture.Workload{
			ID: "orders-stg", IntegrationID: "acme-orders-stg", PartnerID: "acme", State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE,
			Created: now.Add(-day), TLSSubject: tls,
		})
	}
	tests := []struct {
		name   string
		change func(in *posture.Input)
		want   map[string]posture.Severity
	}{
		{name: "clean inventory", change: func(*posture.Input) {}},
		{
			name: "offboarding partner with live credentials",
			change: func(in *posture.Input) {
				partner(in, "acme").State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
			},
			want: map[string]posture.Severity{"ex_partner_live_credentials:" + acme: posture.Critical},
		},
		{
			name: "terminated partner with live credentials",
			change: func(in *posture.Input) {
				partner(in, "acme").State = treatyv1.PartnerState_PARTNER_STATE_TERMINATED
				partner(in, "acme").ContractEnd = now.Add(-day)
			},
			want: map[string]posture.Severity{"ex_partner_live_credentials:" + acme: posture.Critical},
		},
		{
			name: "offboarding partner without live credentials",
			change: func(in *posture.Input) {
				partner(in, "acme").State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
				stats(in, "orders-1").Live, stats(in, "orders-1").LiveBearer = 0, 0
			},
		},
		{
			name: "an offboarded partner's old key, old secret and idle workload are the offboarding's business",
			change: func(in *posture.Input) {
				p := partner(in, "acme")
				p.State, p.ContractEnd = treatyv1.PartnerState_PARTNER_STATE_TERMINATED, now.Add(-day)
				in.Workloads[0].Keys[0].Registered = now.Add(-200 * day)
				in.Secrets[0].Created, in.Secrets[0].Expires = now.Add(-100*day), now.Add(day)
				s := stats(in, "orders-1")
				s.Live, s.LastSeen, s.AuthMethods = 0, time.Time{}, nil
			},
		},
		{
			name:   "contract ended, partner still active",
			change: func(in *posture.Input) { partner(in, "acme").ContractEnd = now.Add(-day) },
			want:   map[string]posture.Severity{"contract_ended_not_offboarded:" + acme: posture.High},
		},
		{
			name: "offboarding longer than the grace period",
			change: func(in *posture.Input) {
				p := partner(in, "acme")
				p.State, p.ContractEnd = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, now.Add(-10*day)
				stats(in, "orders-1").Live = 0
			},
			want: map[string]posture.Severity{"offboarding_not_completed:" + acme: posture.Medium},
		},
		{
			name: "offboarding within the grace period",
			change: func(in *posture.Input) {
				p := partner(in, "acme")
				p.State, p.ContractEnd = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, now.Add(-3*day)
				stats(in, "orders-1").Live = 0
			},
		},
		{
			name:   "integration without owner",
			change: func(in *posture.Input) { in.Integrations[0].Owner = " " },
			want:   map[string]posture.Severity{"integration_without_owner:" + ordersInt: posture.Medium},
		},
		{
			name: "retired integration without owner",
			change: func(in *posture.Input) {
				in.Integrations[0].Owner, in.Integrations[0].State = "", treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED
			},
		},
		{
			name: "client secret past its maximum age",
			change: func(in *posture.Input) {
				in.Secrets[0].Created, in.Secrets[0].Expires = now.Add(-100*day), now.Add(day)
			},
			want: map[string]posture.Severity{"client_secret_too_old:" + orders1 + "/credential/cs-1": posture.High},
		},
		{
			name: "revoked old client secret",
			change: func(in *posture.Input) {
				in.Secrets[0].Created, in.Secrets[0].Expires, in.Secrets[0].Revoked = now.Add(-100*day), now.Add(day), now.Add(-day)
			},
		},
		{
			name:   "workload key past its maximum age",
			change: func(in *posture.Input) { in.Workloads[0].Keys[0].Registered = now.Add(-91 * day) },
			want:   map[string]posture.Severity{"workload_key_too_old:" + orders1 + "/credential/k1": posture.Medium},
		},
		{
			name:   "live credential older than the integration's max TTL",
			change: func(in *posture.Input) { stats(in, "orders-1").OldestLiveIssued = now.Add(-2 * time.Hour) },
			want:   map[string]posture.Severity{"credential_outlives_max_ttl:" + orders1 + "/credential/jti-a": posture.High},
		},
		{
			name:   "granted scope unused in the window",
			change: func(in *posture.Input) { stats(in, "orders-1").ScopesSeen = []string{"orders.read"} },
			want:   map[string]posture.Severity{"granted_scopes_unused:" + ordersInt: posture.Medium},
		},
		{
			name: "integration younger than the window",
			change: func(in *posture.Input) {
				stats(in, "orders-1").ScopesSeen = nil
				in.Integrations[0].Created = now.Add(-10 * day)
			},
		},
		{
			name:   "workload never used in the window",
			change: func(in *posture.Input) { stats(in, "orders-1").LastSeen = time.Time{} },
			want:   map[string]posture.Severity{"workload_never_used:" + orders1: posture.Medium},
		},
		{
			name: "workload the registry saw recently",
			change: func(in *posture.Input) {
				stats(in, "orders-1").LastSeen = time.Time{}
				in.Workloads[0].LastUsed = now.Add(-day)
			},
		},
		{
			name: "client secret never used in the window",
			change: func(in *posture.Input) {
				in.Secrets[0].Created = now.Add(-40 * day)
				stats(in, "orders-1").AuthMethods = []string{"private_key_jwt"}
			},
			want: map[string]posture.Severity{"client_secret_never_used:" + orders1 + "/credential/cs-1": posture.Medium},
		},
		{
			name:   "review overdue",
			change: func(in *posture.Input) { partner(in, "acme").NextReview = now.Add(-day) },
			want:   map[string]posture.Severity{"review_overdue:" + acme: posture.Medium},
		},
		{
			name:   "review overdue for a critical partner",
			change: func(in *posture.Input) { partner(in, "bigbank").NextReview = now.Add(-day) },
			want:   map[string]posture.Severity{"review_overdue:partner/bigbank": posture.High},
		},
		{
			name: "one certificate subject in two environments",
			change: func(in *posture.Input) {
				staging(in, "san_dns=orders.acme.example")
				in.Workloads[0].TLSSubject = "san_dns=orders.acme.example"
			},
			want: map[string]posture.Severity{"workload_across_environments:partner/acme/workload/orders-1/credential/san_dns=orders.acme.example": posture.High},
		},
		{
			name: "one certificate subject, one environment",
			change: func(in *posture.Input) {
				staging(in, "san_dns=orders.acme.example")
				in.Integrations[2].Environment = "production"
				in.Workloads[0].TLSSubject = "san_dns=orders.acme.example"
			},
		},
		{
			name: "one DPoP key bound by workloads in two environments",
			change: func(in *posture.Input) {
				in.Integrations[0].Environment = "staging"
				stats(in, "orders-1").BindingThumbprints = []string{"tp-1"}
			},
			want: map[string]posture.Severity{"workload_across_environments:partner/acme/workload/orders-1/credential/tp-1": posture.High},
		},
		{
			name:   "client secrets allowed for a high-risk partner",
			change: func(in *posture.Input) { partner(in, "acme").RiskTier = treatyv1.RiskTier_RISK_TIER_HIGH },
			want:   map[string]posture.Severity{"client_secret_for_high_risk_partner:" + ordersInt: posture.High},
		},
		{
			name: "client secrets allowed for a critical partner",
			change: func(in *posture.Input) {
				in.Integrations[1].AuthMethods = append(in.Integrations[1].AuthMethods, treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST)
			},
			want: map[string]posture.Severity{"client_secret_for_high_risk_partner:" + bankPayInt: posture.Critical},
		},
		{
			name: "bearer tokens for a critical partner",
			change: func(in *posture.Input) {
				in.Integrations[1].SenderConstraint = treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
			},
			want: map[string]posture.Severity{"bearer_tokens_for_critical_partner:" + bankPayInt: posture.High},
		},
		{
			name: "usage rules skipped on a truncated inventory",
			change: func(in *posture.Input) {
				in.Inventory.Truncated = true
				stats(in, "orders-1").LastSeen, stats(in, "orders-1").ScopesSeen = time.Time{}, nil
			},
		},
		{
			name: "inventory rules skipped without an inventory",
			change: func(in *posture.Input) {
				partner(in, "acme").State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
				in.Inventory = nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fixture()
			tt.change(&in)
			res := posture.Evaluate(in, posture.Config{})
			got := map[string]posture.Severity{}
			for _, f := range res.Findings {
				got[f.ID] = f.Severity
				if f.Message == "" || len(f.Evidence) == 0 || f.Risk.Title() == "" {
					t.Errorf("finding %s lacks a message, evidence or a known OWASP item: %+v", f.ID, f)
				}
				if !strings.HasPrefix(f.ID, f.Rule+":") {
					t.Errorf("finding id %q does not start with its rule %q", f.ID, f.Rule)
				}
			}
			if tt.want == nil {
				tt.want = map[string]posture.Severity{}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEveryRuleHasACase(t *testing.T) {
	// TestRules' ids name each rule; keep the list of rules and the cases in step.
	if len(posture.Rules) != 14 {
		t.Errorf("posture.Rules has %d rules; add a TestRules case for each new one", len(posture.Rules))
	}
}

func TestNotes(t *testing.T) {
	in := fixture()
	in.Inventory = nil
	if res := posture.Evaluate(in, posture.Config{}); len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "inventory") {
		t.Errorf("notes = %q, want one about the inventory", res.Notes)
	}
	if res := posture.Evaluate(fixture(), posture.Config{}); len(res.Notes) != 0 {
		t.Errorf("notes = %q, want none", res.Notes)
	}
}

func TestOrderAndMapping(t *testing.T) {
	in := fixture()
	in.Partners[0].State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING // critical, NHI1
	in.Integrations[0].Owner = ""                                          // medium, NHI1
	in.Integrations[1].SenderConstraint = treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
	res := posture.Evaluate(in, posture.Config{})
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Severity.String()+" "+f.Risk.Label()+" "+f.Rule)
	}
	want := []string{
		"critical NHI1:2025 Improper Offboarding ex_partner_live_credentials",
		"high NHI4:2025 Insecure Authentication bearer_tokens_for_critical_partner",
		"medium NHI1:2025 Improper Offboarding integration_without_owner",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestConfig(t *testing.T) {
	in := fixture()
	in.Secrets[0].Created = now.Add(-20 * day)
	res := posture.Evaluate(in, posture.Config{MaxSecretAge: 15 * day})
	if len(res.Findings) != 1 || res.Findings[0].Rule != "client_secret_too_old" || res.Findings[0].Evidence["max_age_days"] != "15" {
		t.Errorf("findings = %+v, want one client_secret_too_old with max_age_days 15", res.Findings)
	}
	if err := (posture.Config{UsageWindow: -time.Hour}).Validate(); err == nil {
		t.Error("a negative UsageWindow is valid")
	}
}
