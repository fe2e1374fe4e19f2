package registry_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func TestCreateIntegrationRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustPartner(t, "globex")
	e.mustIntegration(t, "taken", "globex")
	e.mustPartner(t, "paused")
	if _, _, err := e.reg.SuspendPartner(context.Background(), "paused", "audit", "bob"); err != nil {
		t.Fatal(err)
	}
	e.mustPartner(t, "gone")
	if _, _, err := e.reg.OffboardPartner(context.Background(), "gone", "ended", "bob"); err != nil {
		t.Fatal(err)
	}
	many := make([]string, 257)
	for i := range many {
		many[i] = fmt.Sprintf("s%d", i)
	}
	tests := []struct {
		name  string
		edit  func(*registry.Integration)
		kind  fail.Kind
		field string
	}{
		{"missing id", func(i *registry.Integration) { i.ID = "" }, fail.Invalid, "integration.id"},
		{"bad id", func(i *registry.Integration) { i.ID = "-x" }, fail.Invalid, "integration.id"},
		{"missing partner", func(i *registry.Integration) { i.PartnerID = "" }, fail.Invalid, "integration.partner_id"},
		{"no scopes", func(i *registry.Integration) { i.AllowedScopes = nil }, fail.Invalid, "integration.allowed_scopes"},
		{"empty scope", func(i *registry.Integration) { i.AllowedScopes = []string{"a", ""} }, fail.Invalid, "integration.allowed_scopes"},
		{"duplicate scope", func(i *registry.Integration) { i.AllowedScopes = []string{"a", "b", "a"} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope with space", func(i *registry.Integration) { i.AllowedScopes = []string{"orders read"} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope with quote", func(i *registry.Integration) { i.AllowedScopes = []string{`a"b`} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope with backslash", func(i *registry.Integration) { i.AllowedScopes = []string{`a\b`} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope not ascii", func(i *registry.Integration) { i.AllowedScopes = []string{"lire:é"} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope with control", func(i *registry.Integration) { i.AllowedScopes = []string{"a\x7f"} }, fail.Invalid, "integration.allowed_scopes"},
		{"scope too long", func(i *registry.Integration) { i.AllowedScopes = []string{strings.Repeat("a", 257)} }, fail.Invalid, "integration.allowed_scopes"},
		{"too many scopes", func(i *registry.Integration) { i.AllowedScopes = many }, fail.Invalid, "integration.allowed_scopes"},
		{"no audiences", func(i *registry.Integration) { i.Audiences = []string{} }, fail.Invalid, "integration.audiences"},
		{"duplicate audience", func(i *registry.Integration) { i.Audiences = []string{"api", "api"} }, fail.Invalid, "integration.audiences"},
		{"audience with space", func(i *registry.Integration) { i.Audiences = []string{"my api"} }, fail.Invalid, "integration.audiences"},
		{"audience too long", func(i *registry.Integration) { i.Audiences = []string{strings.Repeat("a", 257)} }, fail.Invalid, "integration.audiences"},
		{"zero ttl", func(i *registry.Integration) { i.MaxTTL = 0 }, fail.Invalid, "integration.max_credential_ttl"},
		{"negative ttl", func(i *registry.Integration) { i.MaxTTL = -time.Minute }, fail.Invalid, "integration.max_credential_ttl"},
		{"ttl above global max", func(i *registry.Integration) { i.MaxTTL = 24*time.Hour + time.Second }, fail.Invalid, "integration.max_credential_ttl"},
		{"unknown partner", func(i *registry.Integration) { i.PartnerID = "nobody" }, fail.NotFound, ""},
		{"suspended partner", func(i *registry.Integration) { i.PartnerID = "paused" }, fail.Precondition, ""},
		{"terminated partner", func(i *registry.Integration) { i.PartnerID = "gone" }, fail.Precondition, ""},
		// Ids are unique per kind across the deployment, not per partner.
		{"id taken under another partner", func(i *registry.Integration) { i.ID = "taken" }, fail.AlreadyExists, ""},
	}
	head := e.rev.Head()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := integration("orders", "acme")
			tc.edit(&in)
			_, _, err := e.reg.CreateIntegration(context.Background(), in, "alice", active)
			checkErr(t, err, tc.kind, tc.field)
		})
	}
	if e.rev.Head() != head {
		t.Errorf("refused integrations were published: head %d, want %d", e.rev.Head(), head)
	}
	if got, _, _ := e.reg.ListIntegrations(context.Background(), "", 0, ""); len(got) != 1 {
		t.Errorf("%d integrations stored, want 1", len(got))
	}
}

func TestCreateIntegrationPublishesAndStores(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	in := registry.Integration{
		ID: "orders", PartnerID: "acme",
		// The edges of RFC 6749's scope-token alphabet are allowed.
		AllowedScopes: []string{"orders:read", "!#[]~", "https://api.example.com/orders"},
		Audiences:     []string{"https://api.example.com", "urn:example:billing"},
		MaxTTL:        24 * time.Hour,
		Purpose:       "order sync", Environment: "staging", Owner: "orders-team",
		SourceRanges:   []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		ApprovalTicket: "SEC-42",
	}
	got, seq, err := e.reg.CreateIntegration(context.Background(), in, "alice", active)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.State, want.Created, want.Updated, want.Etag = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, now, now, got.Etag
	want.ApprovedBy, want.Approved = "test", now
	want.ClientAuthMethods = registry.DefaultMethods(registry.DefaultRiskTier)
	want.SenderConstraint = treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
	if diff := cmp.Diff(want, got, prefixes); diff != "" {
		t.Errorf("created integration (-want +got):\n%s", diff)
	}
	read, err := e.reg.GetIntegration(context.Background(), "orders")
	if err != nil || !cmp.Equal(got, read, prefixes) {
		t.Errorf("GetIntegration = %+v, %v; want %+v", read, err, got)
	}
	ev := e.event(t, seq)
	ic := ev.GetIntegrationChanged()
	if ic.GetIntegrationId() != "orders" || ic.GetPartnerId() != "acme" || ic.GetState() != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE ||
		!slices.Equal(ic.GetAllowedScopes(), in.AllowedScopes) || !slices.Equal(ic.GetAudiences(), in.Audiences) ||
		ic.GetMaxCredentialTtl().AsDuration() != in.MaxTTL || ev.GetActor() != "alice" ||
		ic.GetEnvironment() != "staging" || !slices.Equal(ic.GetSourceRanges(), []string{"203.0.113.0/24"}) {
		t.Errorf("event %d = %v", seq, ev)
	}
	fi, ok := e.rev.State().Integration("orders")
	if !ok || fi.PartnerID != "acme" || !fi.AllowsScope("!#[]~") || fi.MaxTTL != in.MaxTTL || fi.Environment != "staging" ||
		!fi.AllowsSource(netip.MustParseAddr("203.0.113.9")) || fi.AllowsSource(netip.MustParseAddr("198.51.100.1")) {
		t.Errorf("revoker's integration = %+v, %v", fi, ok)
	}
	// The caller's slices are not shared with the stored integration.
	in.AllowedScopes[0] = "changed"
	if again, _ := e.reg.GetIntegration(context.Background(), "orders"); again.AllowedScopes[0] != "orders:read" {
		t.Error("the stored integration shares the caller's slice")
	}
}

func TestGetIntegrationErrors(t *testing.T) {
	e := newEnv(t)
	_, err := e.reg.GetIntegration(context.Background(), "nothing")
	checkErr(t, err, fail.NotFound, "")
	_, err = e.reg.GetIntegration(context.Background(), "")
	checkErr(t, err, fail.Invalid, "id")
}

func TestMaxCredentialTTLIsConfigurable(t *testing.T) {
	e := newRevoker(t)
	st := storeFor(t)
	reg, err := registry.New(registry.Config{Store: st, Relay: relayFor(t, st, e.pub), MaxCredentialTTL: time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreatePartner(context.Background(), partner("acme"), "alice", active); err != nil {
		t.Fatal(err)
	}
	in := integration("orders", "acme")
	in.MaxTTL = time.Hour + time.Nanosecond
	_, _, err = reg.CreateIntegration(context.Background(), in, "alice", active)
	checkErr(t, err, fail.Invalid, "integration.max_credential_ttl")
	in.MaxTTL = time.Hour
	if _, _, err := reg.CreateIntegration(context.Background(), in, "alice", active); err != nil {
		t.Fatalf("a TTL equal to the global maximum is refused: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	e := newRevoker(t)
	st := storeFor(t)
	relay := relayFor(t, st, e.pub)
	for name, cfg := range map[string]registry.Config{
		"no store":      {Relay: relay},
		"no relay":      {Store: st},
		"negative ttl":  {Store: st, Relay: relay, MaxCredentialTTL: -time.Second},
		"negative wait": {Store: st, Relay: relay, PublishTimeout: -time.Second},
	} {
		if _, err := registry.New(cfg); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
}
