package registry_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// badKeys are public_key_pem values that must be refused, each with a word the message must
// contain so the caller knows what to do.
func badKeys(t *testing.T) map[string]struct{ pem, mention string } {
	t.Helper()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := publicKeyPEM(t)
	return map[string]struct{ pem, mention string }{
		"empty":           {"", "required"},
		"blank":           {" \n", "required"},
		"not pem":         {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "not PEM"},
		"private key":     {pemOf(t, "PRIVATE KEY", edPriv), "private key"},
		"rsa 1024":        {pemOf(t, "PUBLIC KEY", &rsaKey.PublicKey), "2048 bits"},
		"ecdsa p-384":     {pemOf(t, "PUBLIC KEY", &ecKey.PublicKey), "P-256"},
		"certificate":     {strings.ReplaceAll(good, "PUBLIC KEY", "CERTIFICATE"), `"CERTIFICATE"`},
		"two blocks":      {good + good, "exactly one"},
		"garbage der":     {string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")})), "PKIX"},
		"oversized input": {good + strings.Repeat(" ", 9000), "longer"},
	}
}

func TestCreateWorkloadRejectsBadKeys(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	for name, bad := range badKeys(t) {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.reg.CreateWorkload(context.Background(), "bot", "orders", bad.pem, "", "alice")
			checkErr(t, err, fail.Invalid, "public_key_pem")
			if !strings.Contains(err.Error(), bad.mention) || !strings.Contains(err.Error(), "openssl") {
				t.Errorf("message %q should mention %q and how to make a key", err, bad.mention)
			}
			// The input is never echoed: it might be a private key.
			for _, line := range strings.Split(bad.pem, "\n") {
				if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
					t.Errorf("the message echoes the input: %q", err)
				}
			}
		})
	}
}

func TestCreateWorkloadRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustPartner(t, "paused")
	e.mustIntegration(t, "paused-orders", "paused")
	if _, _, err := e.reg.SuspendPartner(context.Background(), "paused", "audit", "bob"); err != nil {
		t.Fatal(err)
	}
	e.mustWorkload(t, "taken", "orders")
	reused := publicKeyPEM(t)
	if _, _, err := e.reg.CreateWorkload(context.Background(), "first", "orders", reused, "", "alice"); err != nil {
		t.Fatal(err)
	}
	head := e.rev.Head()
	tests := []struct {
		name, id, integration, pem, actor string
		kind                              fail.Kind
		field                             string
	}{
		{"missing id", "", "orders", publicKeyPEM(t), "", fail.Invalid, "id"},
		{"bad id", "Bot", "orders", publicKeyPEM(t), "", fail.Invalid, "id"},
		{"missing integration", "bot", "", publicKeyPEM(t), "", fail.Invalid, "integration_id"},
		{"bad actor", "bot", "orders", publicKeyPEM(t), "a\x00b", fail.Invalid, "actor"},
		{"unknown integration", "bot", "nothing", publicKeyPEM(t), "", fail.NotFound, ""},
		{"partner suspended", "bot", "paused-orders", publicKeyPEM(t), "", fail.Precondition, ""},
		{"duplicate id", "taken", "orders", publicKeyPEM(t), "", fail.AlreadyExists, ""},
		{"key of another workload", "bot", "orders", reused, "", fail.AlreadyExists, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.reg.CreateWorkload(context.Background(), tc.id, tc.integration, tc.pem, "", tc.actor)
			checkErr(t, err, tc.kind, tc.field)
		})
	}
	if e.rev.Head() != head {
		t.Errorf("refused workloads were published: head %d, want %d", e.rev.Head(), head)
	}
}

func TestCreateWorkloadPublishesAndStores(t *testing.T) {
	e := newEnv(t)
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	// Surrounding whitespace is tolerated; the stored PEM is canonical.
	w, seq, err := e.reg.CreateWorkload(context.Background(), "bot", "orders", "\n"+pemOf(t, "PUBLIC KEY", pub)+"\n\n", "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	wantKey := registry.Key{KeyID: base64.RawURLEncoding.EncodeToString(sum), Algorithm: "EdDSA", PublicKeyPEM: pemOf(t, "PUBLIC KEY", pub)}
	if w.ID != "bot" || w.IntegrationID != "orders" || w.PartnerID != "acme" || w.State != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE ||
		len(w.Keys) != 1 || w.Keys[0] != wantKey || w.Created != now {
		t.Errorf("created workload = %+v, want key %+v", w, wantKey)
	}
	parsed, err := w.Keys[0].PublicKey()
	if err != nil || !pub.Equal(parsed) {
		t.Errorf("Key.PublicKey = %v, %v", parsed, err)
	}
	read, err := e.reg.GetWorkload(context.Background(), "bot")
	if err != nil || read.Etag != w.Etag || read.Keys[0] != wantKey || read.PartnerID != "acme" {
		t.Errorf("GetWorkload = %+v, %v", read, err)
	}
	ev := e.event(t, seq)
	if wc := ev.GetWorkloadChanged(); wc.GetWorkloadId() != "bot" || wc.GetIntegrationId() != "orders" || wc.GetPartnerId() != "acme" ||
		wc.GetState() != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE || ev.GetActor() != "alice" {
		t.Errorf("event %d = %v", seq, ev)
	}
	if fw, ok := e.rev.State().Workload("bot"); !ok || fw.PartnerID != "acme" || fw.IntegrationID != "orders" {
		t.Errorf("revoker's workload = %+v, %v", fw, ok)
	}
	_, err = e.reg.GetWorkload(context.Background(), "nobody")
	checkErr(t, err, fail.NotFound, "")
}

func TestKeyPublicKeyChecksItsID(t *testing.T) {
	k, err := registry.ParsePublicKey("public_key_pem", publicKeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := registry.ParsePublicKey("public_key_pem", publicKeyPEM(t))
	for name, bad := range map[string]registry.Key{
		"other key's pem": {KeyID: k.KeyID, Algorithm: k.Algorithm, PublicKeyPEM: other.PublicKeyPEM},
		"other alg":       {KeyID: k.KeyID, Algorithm: "RS256", PublicKeyPEM: k.PublicKeyPEM},
		"broken pem":      {KeyID: k.KeyID, Algorithm: k.Algorithm, PublicKeyPEM: "x"},
	} {
		if _, err := bad.PublicKey(); err == nil {
			t.Errorf("%s: PublicKey accepted a mismatched key", name)
		}
	}
}
