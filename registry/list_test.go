package registry_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/registry"
)

// pageAll follows next page tokens from the start and returns the ids of every page.
func pageAll(t *testing.T, size int, list func(size int, token string) ([]string, string, error)) [][]string {
	t.Helper()
	var pages [][]string
	token := ""
	for {
		ids, next, err := list(size, token)
		if err != nil {
			t.Fatalf("list after %d pages: %v", len(pages), err)
		}
		pages = append(pages, ids)
		if next == "" {
			return pages
		}
		if len(pages) > 100 {
			t.Fatal("paging does not end")
		}
		token = next
	}
}

func partnerIDs(e *env) func(int, string) ([]string, string, error) {
	return func(size int, token string) ([]string, string, error) {
		ps, next, err := e.reg.ListPartners(context.Background(), size, token)
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		return ids, next, err
	}
}

func integrationIDs(e *env, partnerID string) func(int, string) ([]string, string, error) {
	return func(size int, token string) ([]string, string, error) {
		is, next, err := e.reg.ListIntegrations(context.Background(), partnerID, size, token)
		ids := make([]string, len(is))
		for i, in := range is {
			ids[i] = in.ID
		}
		return ids, next, err
	}
}

func workloadIDs(e *env, integrationID string) func(int, string) ([]string, string, error) {
	return func(size int, token string) ([]string, string, error) {
		ws, next, err := e.reg.ListWorkloads(context.Background(), integrationID, size, token)
		ids := make([]string, len(ws))
		for i, w := range ws {
			ids[i] = w.ID
		}
		return ids, next, err
	}
}

func TestListsPageInIDOrder(t *testing.T) {
	e := newEnv(t)
	// Created out of order, and with ids that are prefixes of one another, so the index keys
	// ("a/…", "a-b/…") are exercised.
	for _, id := range []string{"b", "a-b", "a", "c", "ab"} {
		e.mustPartner(t, id)
	}
	for _, in := range [][2]string{{"i5", "a"}, {"i1", "a-b"}, {"i3", "a"}, {"i2", "ab"}, {"i4", "a"}, {"i6", "a"}} {
		e.mustIntegration(t, in[0], in[1])
	}
	for _, w := range [][2]string{{"w2", "i3"}, {"w1", "i3"}, {"w3", "i1"}} {
		e.mustWorkload(t, w[0], w[1])
	}
	tests := []struct {
		name string
		list func(int, string) ([]string, string, error)
		size int
		want [][]string
	}{
		{"partners by 2", partnerIDs(e), 2, [][]string{{"a", "a-b"}, {"ab", "b"}, {"c"}}},
		{"partners exact pages", partnerIDs(e), 5, [][]string{{"a", "a-b", "ab", "b", "c"}}},
		{"partners default size", partnerIDs(e), 0, [][]string{{"a", "a-b", "ab", "b", "c"}}},
		{"partners above max size", partnerIDs(e), 5000, [][]string{{"a", "a-b", "ab", "b", "c"}}},
		{"all integrations", integrationIDs(e, ""), 4, [][]string{{"i1", "i2", "i3", "i4"}, {"i5", "i6"}}},
		{"integrations of a", integrationIDs(e, "a"), 3, [][]string{{"i3", "i4", "i5"}, {"i6"}}},
		{"integrations of a-b", integrationIDs(e, "a-b"), 3, [][]string{{"i1"}}},
		{"integrations of c", integrationIDs(e, "c"), 3, [][]string{{}}},
		{"integrations of unknown", integrationIDs(e, "nobody"), 3, [][]string{{}}},
		{"all workloads", workloadIDs(e, ""), 1, [][]string{{"w1"}, {"w2"}, {"w3"}}},
		{"workloads of i3", workloadIDs(e, "i3"), 0, [][]string{{"w1", "w2"}}},
		{"workloads of i4", workloadIDs(e, "i4"), 0, [][]string{{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pageAll(t, tc.size, tc.list)); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}
	// A page holds full records.
	is, _, err := e.reg.ListIntegrations(context.Background(), "a", 1, "")
	want, _ := e.reg.GetIntegration(context.Background(), "i3")
	if err != nil || len(is) != 1 || !cmp.Equal(is[0], want) {
		t.Errorf("ListIntegrations = %+v, %v; want [%+v]", is, err, want)
	}
}

func TestListsRejectBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"a", "b", "c"} {
		e.mustPartner(t, id)
		e.mustIntegration(t, "i-"+id, id)
	}
	_, partnersToken, _ := e.reg.ListPartners(context.Background(), 1, "")
	_, aToken, _ := e.reg.ListIntegrations(context.Background(), "", 1, "")
	if partnersToken == "" || aToken == "" {
		t.Fatal("no next page token")
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte("v1\x00partners\x00\x00../etc"))
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"negative page size", func() error { _, _, err := e.reg.ListPartners(ctx, -1, ""); return err }, "page_size"},
		{"garbage token", func() error { _, _, err := e.reg.ListPartners(ctx, 1, "%%%"); return err }, "page_token"},
		{"forged token", func() error { _, _, err := e.reg.ListPartners(ctx, 1, forged); return err }, "page_token"},
		{"token of another list", func() error { _, _, err := e.reg.ListWorkloads(ctx, "", 1, partnersToken); return err }, "page_token"},
		{"token of another filter", func() error { _, _, err := e.reg.ListIntegrations(ctx, "a", 1, aToken); return err }, "page_token"},
		{"bad partner filter", func() error { _, _, err := e.reg.ListIntegrations(ctx, "A!", 1, ""); return err }, "partner_id"},
		{"bad integration filter", func() error { _, _, err := e.reg.ListWorkloads(ctx, "A!", 1, ""); return err }, "integration_id"},
		{"negative audit limit", func() error { _, err := e.reg.ListAudit(ctx, 0, -1); return err }, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, tc.call(), fail.Invalid, tc.field) })
	}
}

func TestAuditTrailRecordsEveryChange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	w := e.mustWorkload(t, "bot", "orders")
	if _, _, err := e.reg.SuspendPartner(ctx, "acme", "incident 7", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.SuspendPartner(ctx, "acme", "again", "bob"); err == nil {
		t.Fatal("suspended twice")
	}
	if _, _, err := e.reg.OffboardPartner(ctx, "acme", "contract over", "carol"); err != nil {
		t.Fatal(err)
	}
	recs, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := partner("acme")
	want := []registry.AuditRecord{
		{Sequence: 1, Time: now, Actor: "alice", Action: "partner.create", Target: "partner/acme", Reason: "created, approved by test and activated in one step",
			After: map[string]string{"state": "active", "display_name": p.DisplayName, "owner_team": p.OwnerTeam, "contract_end": "2031-06-01T12:00:00Z", "risk_tier": "medium",
				"approved_by": "test", "approved": "2030-06-01T12:00:00Z"}},
		{Sequence: 2, Time: now, Actor: "alice", Action: "integration.create", Target: "integration/orders", Reason: "created, approved by test and activated in one step",
			After: map[string]string{"state": "active", "partner_id": "acme", "allowed_scopes": "orders:read orders:write",
				"audiences": "https://api.example.com", "max_ttl": "15m0s", "environment": "production",
				"approved_by": "test", "approved": "2030-06-01T12:00:00Z",
				"client_auth_methods": "private_key_jwt tls_client_auth self_signed_tls_client_auth client_secret_basic client_secret_post", "sender_constraint": "none"}},
		{Sequence: 3, Time: now, Actor: "alice", Action: "workload.create", Target: "workload/bot", Reason: "workload created",
			After: map[string]string{"state": "active", "integration_id": "orders", "partner_id": "acme", "key_ids": w.Keys[0].KeyID}},
		{Sequence: 4, Time: now, Actor: "bob", Action: "partner.suspend", Target: "partner/acme", Reason: "incident 7",
			Before: map[string]string{"state": "active", "display_name": p.DisplayName, "owner_team": p.OwnerTeam, "contract_end": "2031-06-01T12:00:00Z", "risk_tier": "medium", "approved_by": "test", "approved": "2030-06-01T12:00:00Z"},
			After:  map[string]string{"state": "suspended", "display_name": p.DisplayName, "owner_team": p.OwnerTeam, "contract_end": "2031-06-01T12:00:00Z", "risk_tier": "medium", "approved_by": "test", "approved": "2030-06-01T12:00:00Z"}},
		{Sequence: 5, Time: now, Actor: "carol", Action: "partner.offboard", Target: "partner/acme", Reason: "contract over",
			Before: map[string]string{"state": "suspended", "display_name": p.DisplayName, "owner_team": p.OwnerTeam, "contract_end": "2031-06-01T12:00:00Z", "risk_tier": "medium", "approved_by": "test", "approved": "2030-06-01T12:00:00Z"},
			After:  map[string]string{"state": "terminated", "display_name": p.DisplayName, "owner_team": p.OwnerTeam, "contract_end": "2031-06-01T12:00:00Z", "risk_tier": "medium", "approved_by": "test", "approved": "2030-06-01T12:00:00Z"}},
	}
	// The hashes are checked by the chain's own tests (audit_test.go).
	if diff := cmp.Diff(want, recs, cmpopts.IgnoreFields(registry.AuditRecord{}, "Prev", "Hash")); diff != "" {
		t.Errorf("audit trail (-want +got):\n%s", diff)
	}
	page, err := e.reg.ListAudit(ctx, 2, 2)
	if err != nil || len(page) != 2 || page[0].Sequence != 3 || page[1].Sequence != 4 {
		t.Errorf("ListAudit(after 2, limit 2) = %+v, %v", page, err)
	}
	if tail, err := e.reg.ListAudit(ctx, 5, 0); err != nil || len(tail) != 0 {
		t.Errorf("ListAudit after the end = %+v, %v", tail, err)
	}
}
