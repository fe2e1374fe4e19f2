package pdptest

import (
	"fmt"
	"testing"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/token"
)

// Fixture is a deployment of realistic size in a real revoker log: partners, each with
// IntegrationsPerPartner integrations and one workload per integration, all active, and one
// issuer key per algorithm the PDP is benchmarked with. The reference fixture is
// NewFixture(tb, 10_000): 10,000 partners, 30,000 integrations, 30,000 workloads.
type Fixture struct {
	Log      *revoker.Log
	Partners int
	// Keys are the published issuer keys by algorithm: EdDSA, ES256 and RS256.
	Keys map[jose.SignatureAlgorithm]*Key
}

// IntegrationsPerPartner is the number of integrations (and workloads) of each fixture partner.
const IntegrationsPerPartner = 3

// FixtureScopes and FixtureAudience are what every fixture integration allows.
var (
	FixtureScopes   = []string{"read", "write", "admin"}
	FixtureAudience = "api"
)

// FixtureAlgorithms are the algorithms of the fixture's keys.
var FixtureAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

// PartnerID names fixture partner p.
func PartnerID(p int) string { return fmt.Sprintf("p%05d", p) }

// IntegrationID names integration i of fixture partner p.
func IntegrationID(p, i int) string { return fmt.Sprintf("p%05d-i%d", p, i) }

// WorkloadID names the workload of integration i of fixture partner p.
func WorkloadID(p, i int) string { return fmt.Sprintf("p%05d-i%d-w", p, i) }

// NewFixture publishes a fixture of n partners into log, through its Publish (2,000 events per
// transaction), as the registry's and issuer's outboxes do.
func NewFixture(tb testing.TB, log *revoker.Log, n int) *Fixture {
	tb.Helper()
	f := &Fixture{Log: log, Partners: n, Keys: make(map[jose.SignatureAlgorithm]*Key)}
	var batch []*treatyv1.Event
	flush := func() {
		if len(batch) > 0 {
			Publish(tb, log, batch...)
			batch = batch[:0]
		}
	}
	add := func(ev *treatyv1.Event) {
		batch = append(batch, ev)
		if len(batch) == 2000 {
			flush()
		}
	}
	for _, alg := range FixtureAlgorithms {
		k := NewKeyAlg(tb, "k-"+string(alg), alg)
		f.Keys[alg] = k
		add(k.Published(tb))
	}
	for p := range n {
		add(Partner(PartnerID(p), treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEnd))
		for i := range IntegrationsPerPartner {
			add(Integration(IntegrationID(p, i), PartnerID(p), treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, FixtureScopes, []string{FixtureAudience}))
			add(Workload(WorkloadID(p, i), IntegrationID(p, i), PartnerID(p), treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE))
		}
	}
	flush()
	return f
}

// Claims returns valid claims for workload i of partner p (scopes read and write, audience api)
// at the log's current head.
func (f *Fixture) Claims(p, i int) token.Claims {
	return Claims(WorkloadID(p, i), IntegrationID(p, i), PartnerID(p), "read write", FixtureAudience, f.Log.Epoch(), f.Log.Head())
}

// Token mints a valid token for workload i of partner p with the key of alg.
func (f *Fixture) Token(tb testing.TB, alg jose.SignatureAlgorithm, p, i int) string {
	tb.Helper()
	return f.Keys[alg].Mint(tb, f.Claims(p, i))
}
