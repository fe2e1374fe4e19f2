package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

const (
	pkj          = treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT
	tlsAuth      = treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_TLS_CLIENT_AUTH
	selfSigned   = treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_SELF_SIGNED_TLS_CLIENT_AUTH
	secretBasic  = treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC
	secretPost   = treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST
	tierHigh     = treatyv1.RiskTier_RISK_TIER_HIGH
	tierCritical = treatyv1.RiskTier_RISK_TIER_CRITICAL
	tierLow      = treatyv1.RiskTier_RISK_TIER_LOW
)

func TestIntegrationAuthMethodsFollowTheRiskTier(t *testing.T) {
	all := []treatyv1.ClientAuthMethod{pkj, tlsAuth, selfSigned, secretBasic, secretPost}
	noSecrets := []treatyv1.ClientAuthMethod{pkj, tlsAuth, selfSigned}
	for _, tc := range []struct {
		name      string
		tier      treatyv1.RiskTier
		requested []treatyv1.ClientAuthMethod
		want      []treatyv1.ClientAuthMethod
		wantKind  fail.Kind
	}{
		{name: "unspecified tier is medium: all", want: all},
		{name: "low default: all", tier: tierLow, want: all},
		{name: "high default: no secrets", tier: tierHigh, want: noSecrets},
		{name: "critical default: no secrets", tier: tierCritical, want: noSecrets},
		{name: "low may allow secrets", tier: tierLow, requested: []treatyv1.ClientAuthMethod{secretBasic}, want: []treatyv1.ClientAuthMethod{secretBasic}},
		{name: "high may narrow to mtls", tier: tierHigh, requested: []treatyv1.ClientAuthMethod{tlsAuth}, want: []treatyv1.ClientAuthMethod{tlsAuth}},
		{name: "high refuses client_secret_basic", tier: tierHigh, requested: []treatyv1.ClientAuthMethod{pkj, secretBasic}, wantKind: fail.Precondition},
		{name: "critical refuses client_secret_post", tier: tierCritical, requested: []treatyv1.ClientAuthMethod{secretPost}, wantKind: fail.Precondition},
		{name: "unknown method", requested: []treatyv1.ClientAuthMethod{42}, wantKind: fail.Invalid},
		{name: "duplicate method", requested: []treatyv1.ClientAuthMethod{pkj, pkj}, wantKind: fail.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := partner("acme")
			p.RiskTier = tc.tier
			if _, _, err := e.reg.CreatePartner(context.Background(), p, "alice", active); err != nil {
				t.Fatal(err)
			}
			in := integration("orders", "acme")
			in.ClientAuthMethods = tc.requested
			got, _, err := e.reg.CreateIntegration(context.Background(), in, "alice", active)
			if tc.wantKind != 0 {
				field := ""
				if tc.wantKind == fail.Invalid {
					field = "integration.allowed_client_auth_methods"
				}
				checkErr(t, err, tc.wantKind, field)
				if tc.wantKind == fail.Precondition && (!strings.Contains(err.Error(), "risk tier") || !strings.Contains(err.Error(), "client_secret")) {
					t.Errorf("message %q should say which tier refuses which method", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ClientAuthMethods, tc.want) {
				t.Errorf("methods %v, want %v", got.ClientAuthMethods, tc.want)
			}
			if got.SenderConstraint != treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE {
				t.Errorf("sender constraint %v, want NONE by default", got.SenderConstraint)
			}
			read, err := e.reg.GetIntegration(context.Background(), "orders")
			if err != nil || !slices.Equal(read.ClientAuthMethods, tc.want) {
				t.Errorf("read back %v, %v", read.ClientAuthMethods, err)
			}
		})
	}
}

func TestIntegrationSenderConstraintIsStored(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	in := integration("orders", "acme")
	in.SenderConstraint = treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP_OR_MTLS
	if _, _, err := e.reg.CreateIntegration(context.Background(), in, "alice", active); err != nil {
		t.Fatal(err)
	}
	got, err := e.reg.GetIntegration(context.Background(), "orders")
	if err != nil || got.SenderConstraint != in.SenderConstraint {
		t.Fatalf("got %v, %v", got.SenderConstraint, err)
	}
	in.ID, in.SenderConstraint = "bad", 99
	_, _, err = e.reg.CreateIntegration(context.Background(), in, "alice", active)
	checkErr(t, err, fail.Invalid, "integration.sender_constraint")
}

func TestPartnerRiskTier(t *testing.T) {
	e := newEnv(t)
	p := partner("acme")
	p.RiskTier = tierCritical
	got, _, err := e.reg.CreatePartner(context.Background(), p, "alice", active)
	if err != nil || got.RiskTier != tierCritical {
		t.Fatalf("got %v, %v", got.RiskTier, err)
	}
	p.ID, p.RiskTier = "bad", 9
	_, _, err = e.reg.CreatePartner(context.Background(), p, "alice", active)
	checkErr(t, err, fail.Invalid, "partner.risk_tier")
	for name, want := range map[string]treatyv1.RiskTier{"low": tierLow, "high": tierHigh, "critical": tierCritical} {
		if got, ok := registry.ParseTier(name); !ok || got != want || registry.TierName(got) != name {
			t.Errorf("ParseTier(%q) = %v, %v", name, got, ok)
		}
	}
	if _, ok := registry.ParseTier("unspecified"); ok {
		t.Error("ParseTier accepted unspecified")
	}
	if m, ok := registry.ParseMethod("self_signed_tls_client_auth"); !ok || m != selfSigned {
		t.Errorf("ParseMethod = %v, %v", m, ok)
	}
}

func TestWorkloadKeysRotate(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	first := e.mustWorkload(t, "bot", "orders").Keys[0]
	ctx := context.Background()

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	w, seq, err := e.reg.AddWorkloadKey(ctx, "bot", pemOf(t, "PUBLIC KEY", &ec.PublicKey), "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if seq != 0 || len(w.Keys) != 2 || w.Keys[1].Algorithm != registry.AlgorithmES256 {
		t.Fatalf("after add: seq %d, keys %+v", seq, w.Keys)
	}
	second := w.Keys[1]

	// A third key is refused, and so is the same key twice or another workload's key.
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, _, err = e.reg.AddWorkloadKey(ctx, "bot", pemOf(t, "PUBLIC KEY", &rk.PublicKey), "", "alice")
	checkErr(t, err, fail.Precondition, "")
	other := e.mustWorkload(t, "other", "orders")
	_, _, err = e.reg.AddWorkloadKey(ctx, "other", second.PublicKeyPEM, "", "alice")
	checkErr(t, err, fail.AlreadyExists, "")

	// Rotation ends by removing the older key; the last key cannot be removed.
	w, _, err = e.reg.RemoveWorkloadKey(ctx, "bot", first.KeyID, "key rotation", "alice")
	if err != nil || len(w.Keys) != 1 || w.Keys[0].KeyID != second.KeyID {
		t.Fatalf("after remove: %+v, %v", w.Keys, err)
	}
	_, _, err = e.reg.RemoveWorkloadKey(ctx, "bot", second.KeyID, "key rotation", "alice")
	checkErr(t, err, fail.Precondition, "")
	_, _, err = e.reg.RemoveWorkloadKey(ctx, "bot", first.KeyID, "key rotation", "alice")
	checkErr(t, err, fail.NotFound, "")

	// An RSA key of 2048 bits is accepted as RS256; the removed key is free again.
	w, _, err = e.reg.AddWorkloadKey(ctx, "bot", pemOf(t, "PUBLIC KEY", &rk.PublicKey), "", "alice")
	if err != nil || w.Keys[1].Algorithm != registry.AlgorithmRS256 {
		t.Fatalf("rsa key: %+v, %v", w.Keys, err)
	}
	if _, _, err := e.reg.AddWorkloadKey(ctx, "other", first.PublicKeyPEM, "", "alice"); err != nil {
		t.Errorf("a removed key could not be registered again: %v", err)
	}
	got, err := e.reg.GetWorkload(ctx, "bot")
	if err != nil || len(got.Keys) != 2 {
		t.Fatalf("read back %+v, %v", got.Keys, err)
	}
	for _, k := range got.Keys {
		if _, err := k.PublicKey(); err != nil {
			t.Errorf("stored key does not parse back: %v", err)
		}
	}
	_ = other
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	if last := recs[len(recs)-1]; last.Action != "workload.key.add" || last.Before == nil {
		t.Errorf("last audit record %+v", last)
	}
}

func TestWorkloadTLSSubject(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	ctx := context.Background()
	spec := registry.WorkloadSpec{ID: "mtls-bot", IntegrationID: "orders", TLS: &registry.TLSSubject{SubjectDN: "CN=orders-bot,O=Acme"}}
	w, _, err := e.reg.CreateWorkloadFrom(ctx, spec, "", "alice")
	if err != nil || len(w.Keys) != 0 || w.TLS == nil || w.TLS.SubjectDN != "CN=orders-bot,O=Acme" {
		t.Fatalf("created %+v, %v", w, err)
	}
	for name, bad := range map[string]*registry.TLSSubject{
		"none set": {},
		"two set":  {SubjectDN: "CN=a", SANDNS: "a.example.com"},
		"relative": {SANURI: "orders"},
		"control":  {SANDNS: "a\x00b"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.reg.CreateWorkloadFrom(ctx, registry.WorkloadSpec{ID: "x", IntegrationID: "orders", TLS: bad}, "", "alice")
			if fail.KindOf(err) != fail.Invalid {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
}
