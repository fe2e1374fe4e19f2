package registrysvc_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/registrysvc"
)

func TestDirectoryReadsTheRegistry(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustIntegration(t, "orders", "acme")
	pub, keyPEM := publicKey(t)
	f.mustWorkload(t, "bot", "orders", keyPEM)
	dir := registrysvc.NewDirectory(f.conn)

	w, err := dir.Workload(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if w.ID != "bot" || w.IntegrationID != "orders" || w.PartnerID != "acme" || !w.Active || len(w.Keys) != 1 ||
		w.Keys[0].KeyID != base64.RawURLEncoding.EncodeToString(sum) || w.Keys[0].Algorithm != "EdDSA" {
		t.Errorf("Workload = %+v", w)
	}
	if got, ok := w.Keys[0].Public.(ed25519.PublicKey); !ok || !pub.Equal(got) {
		t.Errorf("workload key = %T %v, want the registered Ed25519 key", w.Keys[0].Public, w.Keys[0].Public)
	}

	i, err := dir.Integration(ctx, "orders")
	want := issuer.Integration{ID: "orders", PartnerID: "acme", Active: true, AllowedScopes: []string{"orders:read", "orders:write"},
		Audiences: []string{"https://api.example.com"}, MaxTTL: 15 * time.Minute,
		ClientAuthMethods: []string{"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth", "client_secret_basic", "client_secret_post"},
		SenderConstraint:  issuer.ConstraintNone}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, i); diff != "" {
		t.Errorf("Integration (-want +got):\n%s", diff)
	}

	p, err := dir.Partner(ctx, "acme")
	if err != nil || p.ID != "acme" || !p.Active || !p.ContractEnd.Equal(contractEnd) {
		t.Errorf("Partner = %+v, %v", p, err)
	}
	if _, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "acme", Reason: "incident"}); err != nil {
		t.Fatal(err)
	}
	if p, err := dir.Partner(ctx, "acme"); err != nil || p.Active {
		t.Errorf("Partner after suspension = %+v, %v; want inactive", p, err)
	}
}

func TestDirectoryErrorsKeepTheirKinds(t *testing.T) {
	f := start(t)
	dir := registrysvc.NewDirectory(f.conn)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		kind fail.Kind
	}{
		{"unknown workload", func() error { _, err := dir.Workload(ctx, "nobody"); return err }, fail.NotFound},
		{"unknown integration", func() error { _, err := dir.Integration(ctx, "nothing"); return err }, fail.NotFound},
		{"unknown partner", func() error { _, err := dir.Partner(ctx, "nobody"); return err }, fail.NotFound},
		{"malformed id", func() error { _, err := dir.Workload(ctx, "Not An Id"); return err }, fail.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); fail.KindOf(err) != tc.kind {
				t.Errorf("error %v has kind %d, want %d", err, fail.KindOf(err), tc.kind)
			}
		})
	}
	// A registry that cannot be reached is Unavailable.
	f.conn.Close()
	if _, err := dir.Partner(ctx, "acme"); fail.KindOf(err) != fail.Unavailable {
		t.Errorf("closed connection: %v, want Unavailable", err)
	}
}
