package registry_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// pageFiltered follows a filtered list to its end with pages of size, and returns the ids in order and
// the number of pages.
func pageFiltered[T any](t *testing.T, size int, list func(token string) ([]T, string, error), id func(T) string) ([]string, int) {
	t.Helper()
	var ids []string
	token, pages := "", 0
	for {
		items, next, err := list(token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(items) == 0 && token != "" {
			t.Fatal("a page token led to an empty page")
		}
		if len(items) > size {
			t.Fatalf("page of %d, size %d", len(items), size)
		}
		for _, it := range items {
			ids = append(ids, id(it))
		}
		if next == "" {
			return ids, pages
		}
		token = next
	}
}

func TestListPartnersFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(id, owner, accountable string, tier treatyv1.RiskTier, end time.Duration, opts ...registry.CreateOptions) {
		p := partner(id)
		p.OwnerTeam, p.AccountableOwner, p.RiskTier, p.ContractEnd = owner, accountable, tier, now.Add(end)
		if _, _, err := e.reg.CreatePartner(ctx, p, "alice", opts...); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	high := treatyv1.RiskTier_RISK_TIER_HIGH
	low := treatyv1.RiskTier_RISK_TIER_LOW
	mk("a1", "payments", "ana@example.com", high, 10*day, active)
	mk("a2", "payments", "", low, 400*day)
	mk("a3", "risk", "ana@example.com", high, 20*day, active)
	mk("a4", "risk", "", high, 500*day)
	mk("a5", "Payments", "", high, 30*day, active)
	mk("a6", "ops", "", low, 5*day, active)

	tests := []struct {
		name   string
		filter registry.PartnerFilter
		want   []string
	}{
		{"everything", registry.PartnerFilter{}, []string{"a1", "a2", "a3", "a4", "a5", "a6"}},
		{"proposed", registry.PartnerFilter{State: partnerProposed}, []string{"a2", "a4"}},
		{"active", registry.PartnerFilter{State: partnerActive}, []string{"a1", "a3", "a5", "a6"}},
		{"owner team, any case", registry.PartnerFilter{Owner: "payments"}, []string{"a1", "a2", "a5"}},
		{"accountable owner", registry.PartnerFilter{Owner: "ANA@example.com"}, []string{"a1", "a3"}},
		{"tier", registry.PartnerFilter{RiskTier: high}, []string{"a1", "a3", "a4", "a5"}},
		{"contract ends within 25 days", registry.PartnerFilter{ContractEndBefore: now.Add(25 * day)}, []string{"a1", "a3", "a6"}},
		{"combined", registry.PartnerFilter{State: partnerActive, RiskTier: high, ContractEndBefore: now.Add(25 * day)}, []string{"a1", "a3"}},
		{"nothing", registry.PartnerFilter{Owner: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 100} {
				got, pages := pageFiltered(t, size, func(token string) ([]registry.Partner, string, error) {
					return e.reg.ListPartnersBy(ctx, tc.filter, size, token)
				}, func(p registry.Partner) string { return p.ID })
				if !slices.Equal(got, tc.want) {
					t.Errorf("size %d: %v, want %v", size, got, tc.want)
				}
				// Honest tokens: exactly as many pages as the matches need (one for none).
				if want := max(1, (len(tc.want)+size-1)/size); pages != want {
					t.Errorf("size %d: %d pages, want %d", size, pages, want)
				}
			}
		})
	}

	// A token belongs to its filter.
	_, next, err := e.reg.ListPartnersBy(ctx, registry.PartnerFilter{RiskTier: high}, 1, "")
	if err != nil || next == "" {
		t.Fatal(next, err)
	}
	_, _, err = e.reg.ListPartnersBy(ctx, registry.PartnerFilter{RiskTier: low}, 1, next)
	checkErr(t, err, fail.Invalid, "page_token")
	_, _, err = e.reg.ListPartners(ctx, 1, next)
	checkErr(t, err, fail.Invalid, "page_token")
	_, _, err = e.reg.ListPartnersBy(ctx, registry.PartnerFilter{State: 42}, 1, "")
	checkErr(t, err, fail.Invalid, "state")
}

func TestListIntegrationsFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustPartner(t, "globex")
	mk := func(id, partnerID, env, owner string, opts ...registry.CreateOptions) {
		in := integration(id, partnerID)
		in.Environment, in.Owner = env, owner
		if _, _, err := e.reg.CreateIntegration(ctx, in, "alice", opts...); err != nil {
			t.Fatal(err)
		}
	}
	mk("i1", "acme", "production", "orders", active)
	mk("i2", "acme", "test", "orders")
	mk("i3", "globex", "production", "billing", active)
	mk("i4", "globex", "test", "", active)
	mk("i5", "acme", "production", "Billing")
	tests := []struct {
		name   string
		filter registry.IntegrationFilter
		want   []string
	}{
		{"everything", registry.IntegrationFilter{}, []string{"i1", "i2", "i3", "i4", "i5"}},
		{"partner", registry.IntegrationFilter{PartnerID: "acme"}, []string{"i1", "i2", "i5"}},
		{"requested", registry.IntegrationFilter{State: integrationRequested}, []string{"i2", "i5"}},
		{"environment", registry.IntegrationFilter{Environment: "production"}, []string{"i1", "i3", "i5"}},
		{"owner", registry.IntegrationFilter{Owner: "billing"}, []string{"i3", "i5"}},
		{"partner, state and environment", registry.IntegrationFilter{PartnerID: "acme", State: integrationActive, Environment: "production"}, []string{"i1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 100} {
				got, _ := pageFiltered(t, size, func(token string) ([]registry.Integration, string, error) {
					return e.reg.ListIntegrationsBy(ctx, tc.filter, size, token)
				}, func(i registry.Integration) string { return i.ID })
				if !slices.Equal(got, tc.want) {
					t.Errorf("size %d: %v, want %v", size, got, tc.want)
				}
			}
		})
	}
	// The unfiltered partner list and the filtered one share tokens only when the filter is the
	// partner alone.
	_, next, err := e.reg.ListIntegrations(ctx, "acme", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.ListIntegrationsBy(ctx, registry.IntegrationFilter{PartnerID: "acme"}, 1, next); err != nil {
		t.Errorf("a partner-only filter refused ListIntegrations' token: %v", err)
	}
	_, _, err = e.reg.ListIntegrationsBy(ctx, registry.IntegrationFilter{PartnerID: "acme", Environment: "test"}, 1, next)
	checkErr(t, err, fail.Invalid, "page_token")
	_, _, err = e.reg.ListIntegrationsBy(ctx, registry.IntegrationFilter{Environment: "Bad Env"}, 1, "")
	checkErr(t, err, fail.Invalid, "environment")
}
