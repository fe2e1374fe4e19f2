package registry_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func TestUpdatePartner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.mustPartner(t, "acme")

	// Descriptive fields only: a new etag, an audit record, nothing published.
	head := e.rev.Head()
	change := registry.Partner{ID: "acme", Etag: p.Etag, OwnerTeam: "vendor-risk", AccountableOwner: "ana@example.com", DisplayName: "ignored"}
	got, seq, err := e.reg.UpdatePartner(ctx, change, []string{"owner_team", "accountable_owner"}, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if seq != 0 || e.rev.Head() != head {
		t.Errorf("a descriptive update published something (sequence %d)", seq)
	}
	if got.OwnerTeam != "vendor-risk" || got.AccountableOwner != "ana@example.com" || got.DisplayName != p.DisplayName || got.Etag == p.Etag || got.State != partnerActive {
		t.Errorf("updated partner %+v", got)
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	if last := recs[len(recs)-1]; last.Action != "partner.update" || last.Before["owner_team"] != p.OwnerTeam || last.After["owner_team"] != "vendor-risk" {
		t.Errorf("audit record %+v", last)
	}

	// The contract end is enforcement: published, the feed sees it.
	newEnd := now.Add(30 * 24 * time.Hour)
	got2, seq, err := e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: got.Etag, ContractEnd: newEnd}, []string{"contract_end_time"}, "", "bob")
	if err != nil || seq == 0 || !got2.ContractEnd.Equal(newEnd) {
		t.Fatalf("contract end update = %+v, %d, %v", got2, seq, err)
	}
	if fp, _ := e.rev.State().Partner("acme"); !fp.ContractEnd.Equal(newEnd) {
		t.Errorf("feed contract end %s, want %s", fp.ContractEnd, newEnd)
	}

	tests := []struct {
		name   string
		p      registry.Partner
		fields []string
		kind   fail.Kind
		field  string
	}{
		{"missing etag", registry.Partner{ID: "acme", OwnerTeam: "x"}, []string{"owner_team"}, fail.Invalid, "partner.etag"},
		{"stale etag", registry.Partner{ID: "acme", Etag: p.Etag, OwnerTeam: "x"}, []string{"owner_team"}, fail.Aborted, ""},
		{"no mask", registry.Partner{ID: "acme", Etag: got2.Etag}, nil, fail.Invalid, "update_mask"},
		{"state is not updatable", registry.Partner{ID: "acme", Etag: got2.Etag}, []string{"state"}, fail.Invalid, "update_mask"},
		{"unknown field", registry.Partner{ID: "acme", Etag: got2.Etag}, []string{"colour"}, fail.Invalid, "update_mask"},
		{"blank owner team", registry.Partner{ID: "acme", Etag: got2.Etag}, []string{"owner_team"}, fail.Invalid, "partner.owner_team"},
		{"contract end in the past", registry.Partner{ID: "acme", Etag: got2.Etag, ContractEnd: now.Add(-time.Hour)}, []string{"contract_end_time"}, fail.Invalid, "partner.contract_end_time"},
		{"negative breach notice", registry.Partner{ID: "acme", Etag: got2.Etag, BreachNoticeHours: -1}, []string{"breach_notice_hours"}, fail.Invalid, "partner.breach_notice_hours"},
		{"unknown partner", registry.Partner{ID: "nobody", Etag: "r1"}, []string{"owner_team"}, fail.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.reg.UpdatePartner(ctx, tc.p, tc.fields, "", "bob")
			checkErr(t, err, tc.kind, tc.field)
		})
	}

	// A tier that forbids what an integration allows is refused, naming the integration.
	e.mustIntegration(t, "orders", "acme") // medium tier: client secrets allowed by default
	cur, _ := e.reg.GetPartner(ctx, "acme")
	_, _, err = e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: cur.Etag, RiskTier: treatyv1.RiskTier_RISK_TIER_HIGH}, []string{"risk_tier"}, "", "bob")
	checkErr(t, err, fail.Precondition, "")

	// A terminated partner's record is final.
	if _, _, err := e.reg.OffboardPartner(ctx, "acme", "over", "bob"); err != nil {
		t.Fatal(err)
	}
	cur, _ = e.reg.GetPartner(ctx, "acme")
	_, _, err = e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: cur.Etag, OwnerTeam: "x"}, []string{"owner_team"}, "", "bob")
	checkErr(t, err, fail.Precondition, "")
}

func TestUpdateIntegration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	i := e.mustIntegration(t, "orders", "acme")

	// Narrowing the ceiling and fencing the sources is enforcement: published.
	ranges := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	got, seq, err := e.reg.UpdateIntegration(ctx, registry.Integration{ID: "orders", Etag: i.Etag, AllowedScopes: []string{"orders:read"}, SourceRanges: ranges},
		[]string{"allowed_scopes", "source_ranges"}, "", "bob")
	if err != nil || seq == 0 {
		t.Fatalf("update = %+v, %d, %v", got, seq, err)
	}
	if !slices.Equal(got.AllowedScopes, []string{"orders:read"}) || !slices.Equal(got.SourceRanges, ranges) || got.Environment != "production" || got.State != integrationActive {
		t.Errorf("updated integration %+v", got)
	}
	fi, _ := e.rev.State().Integration("orders")
	if fi.AllowsScope("orders:write") || !fi.AllowsSource(netip.MustParseAddr("10.1.1.1")) || fi.AllowsSource(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("feed integration %+v", fi)
	}

	// Owner and purpose are not: nothing published.
	head := e.rev.Head()
	got, seq, err = e.reg.UpdateIntegration(ctx, registry.Integration{ID: "orders", Etag: got.Etag, Owner: "orders-team", Purpose: "sync"}, []string{"owner", "purpose"}, "", "bob")
	if err != nil || seq != 0 || e.rev.Head() != head || got.Owner != "orders-team" || got.Purpose != "sync" {
		t.Errorf("descriptive update = %+v, %d, %v", got, seq, err)
	}

	tests := []struct {
		name   string
		i      registry.Integration
		fields []string
		kind   fail.Kind
		field  string
	}{
		{"missing etag", registry.Integration{ID: "orders"}, []string{"owner"}, fail.Invalid, "integration.etag"},
		{"stale etag", registry.Integration{ID: "orders", Etag: i.Etag}, []string{"owner"}, fail.Aborted, ""},
		{"partner is not updatable", registry.Integration{ID: "orders", Etag: got.Etag, PartnerID: "other"}, []string{"partner_id"}, fail.Invalid, "update_mask"},
		{"bad environment", registry.Integration{ID: "orders", Etag: got.Etag, Environment: "PROD"}, []string{"environment"}, fail.Invalid, "integration.environment"},
		{"no scopes", registry.Integration{ID: "orders", Etag: got.Etag}, []string{"allowed_scopes"}, fail.Invalid, "integration.allowed_scopes"},
		{"ttl over the maximum", registry.Integration{ID: "orders", Etag: got.Etag, MaxTTL: 48 * time.Hour}, []string{"max_credential_ttl"}, fail.Invalid, "integration.max_credential_ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.reg.UpdateIntegration(ctx, tc.i, tc.fields, "", "bob")
			checkErr(t, err, tc.kind, tc.field)
		})
	}

	// Methods must fit the partner's tier.
	p := partner("fort")
	p.RiskTier = treatyv1.RiskTier_RISK_TIER_HIGH
	if _, _, err := e.reg.CreatePartner(ctx, p, "alice", active); err != nil {
		t.Fatal(err)
	}
	fort := e.mustIntegration(t, "fort-api", "fort")
	_, _, err = e.reg.UpdateIntegration(ctx, registry.Integration{ID: "fort-api", Etag: fort.Etag,
		ClientAuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC}},
		[]string{"allowed_client_auth_methods"}, "", "bob")

	checkErr(t, err, fail.Precondition, "")

	// A retired integration is final.
	if _, _, err := e.reg.RetireIntegration(ctx, "orders", "done", "bob"); err != nil {
		t.Fatal(err)
	}
	cur, _ := e.reg.GetIntegration(ctx, "orders")
	_, _, err = e.reg.UpdateIntegration(ctx, registry.Integration{ID: "orders", Etag: cur.Etag, Owner: "x"}, []string{"owner"}, "", "bob")
	checkErr(t, err, fail.Precondition, "")
}

// Two updates from the same read race: exactly one wins, the other is Aborted and changes nothing.
func TestConcurrentUpdatesOneWins(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.mustPartner(t, "acme")
	owners := []string{"team-a", "team-b", "team-c", "team-d"}
	errs := make(chan error, len(owners))
	for _, o := range owners {
		go func() {
			_, _, err := e.reg.UpdatePartner(ctx, registry.Partner{ID: "acme", Etag: p.Etag, OwnerTeam: o}, []string{"owner_team"}, "", "bob")
			errs <- err
		}()
	}
	won := 0
	for range owners {
		switch err := <-errs; {
		case err == nil:
			won++
		case fail.KindOf(err) != fail.Aborted:
			t.Errorf("a losing update failed with %v, want Aborted", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d updates won, want exactly 1", won)
	}
	got, _ := e.reg.GetPartner(ctx, "acme")
	if got.Etag == p.Etag || !slices.Contains(owners, got.OwnerTeam) {
		t.Errorf("partner after the race: %+v", got)
	}
}
