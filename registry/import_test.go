package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func activePartner(id string) registry.Partner {
	p := partner(id)
	p.State, p.ApprovedBy = treatyv1.PartnerState_PARTNER_STATE_ACTIVE, "carol"
	return p
}

func activeIntegration(id, partnerID string) registry.Integration {
	i := integration(id, partnerID)
	i.Environment = "production"
	i.State, i.ApprovedBy = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, "carol"
	return i
}

func requested(id, partnerID string) registry.Integration {
	i := integration(id, partnerID)
	i.Environment = "production"
	return i
}

// TestImportCommits: a valid import creates everything in one transaction, in the states asked
// for, with an audit record per item and one for the import, and publishes their events.
func TestImportCommits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "existing")
	in := registry.Import{
		Partners:     []registry.Partner{activePartner("acme"), partner("globex")},
		Integrations: []registry.Integration{activeIntegration("acme-api", "acme"), activeIntegration("existing-api", "existing"), requested("globex-api", "globex")},
		Workloads: []registry.WorkloadSpec{
			{ID: "acme-bot", IntegrationID: "acme-api", PublicKeyPEM: publicKeyPEM(t)},
			{ID: "existing-bot", IntegrationID: "existing-api", PublicKeyPEM: publicKeyPEM(t)},
		},
	}
	before, err := e.reg.ListAudit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// A dry run of a valid import reports nothing and writes nothing.
	res, err := e.reg.Import(ctx, in, "importer", true)
	if err != nil || res.Committed || len(res.Errors) != 0 {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if _, err := e.reg.GetPartner(ctx, "acme"); err == nil {
		t.Fatal("a dry run created a partner")
	}
	res, err = e.reg.Import(ctx, in, "importer", false)
	if err != nil || !res.Committed || len(res.Errors) != 0 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	for id, want := range map[string]treatyv1.PartnerState{"acme": treatyv1.PartnerState_PARTNER_STATE_ACTIVE, "globex": treatyv1.PartnerState_PARTNER_STATE_PROPOSED} {
		p, err := e.reg.GetPartner(ctx, id)
		if err != nil || p.State != want {
			t.Errorf("partner %s: %v, %v; want %s", id, p.State, err, want)
		}
	}
	if p, _ := e.reg.GetPartner(ctx, "acme"); p.ApprovedBy != "carol" || p.Approved.IsZero() {
		t.Errorf("imported active partner approval: %q at %v", p.ApprovedBy, p.Approved)
	}
	if i, err := e.reg.GetIntegration(ctx, "globex-api"); err != nil || i.State != treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED {
		t.Errorf("integration globex-api: %v, %v; want REQUESTED", i.State, err)
	}
	if w, err := e.reg.GetWorkload(ctx, "acme-bot"); err != nil || w.PartnerID != "acme" || w.CreatedBy != "importer" {
		t.Errorf("workload acme-bot: %+v, %v", w, err)
	}
	after, err := e.reg.ListAudit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(after) - len(before); got != 8 {
		t.Errorf("%d audit records for 7 items, want 8", got)
	}
	if last := after[len(after)-1]; last.Action != "inventory.import" || last.Actor != "importer" {
		t.Errorf("last audit record = %+v, want the import's", last)
	}
	// The events reach the feed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p, ok := e.rev.State().Partner("acme"); ok && p.State == treatyv1.PartnerState_PARTNER_STATE_ACTIVE {
			if _, ok := e.rev.State().Workload("existing-bot"); ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the import's events did not reach the feed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestImportAllOrNothing: one bad item fails the whole import, every bad item is reported with
// its kind, index and field, and nothing is written.
func TestImportAllOrNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "existing")
	key := publicKeyPEM(t)
	expired := activePartner("expired")
	expired.ContractEnd = now.Add(-time.Hour)
	unapproved := partner("unapproved")
	unapproved.State = treatyv1.PartnerState_PARTNER_STATE_ACTIVE
	terminated := activePartner("gone")
	terminated.State = treatyv1.PartnerState_PARTNER_STATE_TERMINATED
	badScope := activeIntegration("bad-scope", "acme")
	badScope.AllowedScopes = []string{"bad scope"}
	in := registry.Import{
		Partners: []registry.Partner{
			activePartner("acme"), activePartner("Bad"), expired, unapproved, terminated, activePartner("existing"), activePartner("acme"),
		},
		Integrations: []registry.Integration{
			activeIntegration("acme-api", "acme"), badScope, activeIntegration("orphan", "nobody"),
		},
		Workloads: []registry.WorkloadSpec{
			{ID: "bot-1", IntegrationID: "acme-api", PublicKeyPEM: key},
			{ID: "bot-2", IntegrationID: "acme-api", PublicKeyPEM: key},
			{ID: "bot-3", IntegrationID: "acme-api", PublicKeyPEM: "not a key"},
		},
	}
	res, err := e.reg.Import(ctx, in, "importer", false)
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		Kind  string
		Index int
		Field string
	}
	var got []at
	for _, e := range res.Errors {
		got = append(got, at{e.Kind, e.Index, e.Field})
		if e.Message == "" {
			t.Errorf("error %+v has no message", e)
		}
	}
	want := []at{
		{"partners", 1, "partner.id"},
		{"partners", 2, "partner.contract_end_time"},
		{"partners", 3, "partner.approved_by"},
		{"partners", 4, "partner.state"},
		{"partners", 5, ""}, // exists already
		{"partners", 6, ""}, // repeats an id of the import
		{"integrations", 1, "integration.allowed_scopes"},
		{"integrations", 2, ""}, // no such partner
		{"workloads", 1, ""},    // the key is bot-1's
		{"workloads", 2, "workload.public_keys"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if res.Committed {
		t.Error("a failed import says it committed")
	}
	if _, err := e.reg.GetPartner(ctx, "acme"); err == nil {
		t.Error("a failed import created a partner")
	}
	_, err = e.reg.Import(ctx, registry.Import{Partners: make([]registry.Partner, registry.MaxImportItems+1)}, "importer", false)
	checkErr(t, err, fail.Invalid, "partners")
}
