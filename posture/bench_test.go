package posture_test

import (
	"fmt"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
)

// BenchmarkEvaluate evaluates every rule over 10,000 partners, each with an integration, a
// workload, a client secret and an inventory entry.
func BenchmarkEvaluate(b *testing.B) {
	const n = 10_000
	in := posture.Input{Now: now, Inventory: &posture.Inventory{Since: now.Add(-30 * day)}}
	for i := range n {
		p, it, w := fmt.Sprintf("p%d", i), fmt.Sprintf("i%d", i), fmt.Sprintf("w%d", i)
		in.Partners = append(in.Partners, posture.Partner{ID: p, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE,
			RiskTier: treatyv1.RiskTier(1 + i%4), ContractEnd: now.Add(time.Duration(i-100) * day), NextReview: now.Add(time.Duration(i%60-30) * day)})
		in.Integrations = append(in.Integrations, posture.Integration{ID: it, PartnerID: p, State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
			Owner: "o", Environment: []string{"production", "staging"}[i%2], Scopes: []string{"a", "b", "c"}, MaxTTL: time.Hour,
			AuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT}, Created: now.Add(-100 * day)})
		in.Workloads = append(in.Workloads, posture.Workload{ID: w, IntegrationID: it, PartnerID: p, State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE,
			Created: now.Add(-100 * day), Keys: []posture.Key{{ID: "k" + w, Registered: now.Add(-time.Duration(i%120) * day)}},
			TLSSubject: fmt.Sprintf("san_dns=w%d.example", i/2)})
		in.Secrets = append(in.Secrets, posture.ClientSecret{ID: "cs" + w, WorkloadID: w, Created: now.Add(-10 * day), Expires: now.Add(20 * day)})
		in.Inventory.Workloads = append(in.Inventory.Workloads, posture.CredentialStats{WorkloadID: w, IntegrationID: it, PartnerID: p, Live: 3,
			OldestLiveIssued: now.Add(-time.Minute), LastSeen: now.Add(-time.Hour), ScopesSeen: []string{"a"}})
	}
	b.ReportAllocs()
	var findings int
	for b.Loop() {
		findings = len(posture.Evaluate(in, posture.Config{}).Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}
