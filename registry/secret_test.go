package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

func TestClientSecretLifecycle(t *testing.T) {
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	e.node = startNode(t, path, e.pub, func(c *registry.Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	})
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")

	first, secret, err := e.reg.CreateClientSecret(ctx, "bot", 0, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutPrefix(secret, registry.ClientSecretPrefix)
	if raw, err := base64.RawURLEncoding.DecodeString(body); !ok || err != nil || len(raw) != 32 {
		t.Fatalf("secret has the wrong shape (prefix %v, %d bytes, %v)", ok, len(raw), err)
	}
	if first.Creator != "alice" || !first.Expires.Equal(now.Add(registry.DefaultClientSecretTTL)) || !first.Revoked.IsZero() {
		t.Errorf("created %+v, want creator alice, expiry 30 days on, not revoked", first)
	}
	clock.Add(int64(time.Minute))
	second, secret2, err := e.reg.CreateClientSecret(ctx, "bot", 24*time.Hour, "", "alice")
	if err != nil || secret2 == secret || second.ID == first.ID {
		t.Fatalf("second secret: %v (distinct: %v)", err, secret2 != secret)
	}
	if _, _, err := e.reg.CreateClientSecret(ctx, "bot", 0, "", "alice"); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("third live secret: %v, want a precondition error", err)
	}

	// The issuer's view: the hashes of both live secrets, never a secret.
	vs, err := e.reg.ClientSecretVerifiers(ctx, "bot")
	if err != nil || len(vs) != 2 || vs[0].SHA256 != sha256.Sum256([]byte(secret)) || vs[1].SHA256 != sha256.Sum256([]byte(secret2)) {
		t.Fatalf("verifiers = %v, %v; want the hashes of both secrets, oldest first", vs, err)
	}

	// Revoking the first makes room for a third; revoking again changes nothing.
	rev, err := e.reg.RevokeClientSecret(ctx, "bot", first.ID, "secret rotated", "bob")
	if err != nil || rev.Revoked.IsZero() {
		t.Fatalf("revoke: %+v, %v", rev, err)
	}
	if again, err := e.reg.RevokeClientSecret(ctx, "bot", first.ID, "secret rotated", "bob"); err != nil || !again.Revoked.Equal(rev.Revoked) {
		t.Fatalf("revoke again: %+v, %v", again, err)
	}
	clock.Add(int64(time.Minute))
	if _, _, err := e.reg.CreateClientSecret(ctx, "bot", 0, "", "alice"); err != nil {
		t.Fatalf("secret after a revocation: %v", err)
	}
	// An expired secret no longer counts or verifies.
	clock.Add(int64(25 * time.Hour))
	vs, err = e.reg.ClientSecretVerifiers(ctx, "bot")
	if err != nil || len(vs) != 1 {
		t.Fatalf("verifiers after revocation and expiry = %v, %v; want only the third secret", vs, err)
	}
	list, err := e.reg.ListClientSecrets(ctx, "bot")
	if err != nil || len(list) != 3 || list[0].ID != first.ID || list[1].ID != second.ID {
		t.Fatalf("list = %+v, %v; want all three, oldest first", list, err)
	}

	// Audited, and the store holds no secret.
	audit, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		if strings.Contains(a.Action, "client_secret") {
			actions = append(actions, a.Action+" by "+a.Actor)
		}
		if raw, _ := json.Marshal(a); strings.Contains(string(raw), secret) {
			t.Errorf("audit record %d holds the secret", a.Sequence)
		}
	}
	if got := strings.Join(actions, ", "); got != "workload.client_secret.create by alice, workload.client_secret.create by alice, workload.client_secret.revoke by bob, workload.client_secret.create by alice" {
		t.Errorf("audited %s", got)
	}
	e.node.stop()
	st, err := store.OpenBolt(path, registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf strings.Builder
	if _, err := st.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), strings.TrimPrefix(secret, registry.ClientSecretPrefix)) || strings.Contains(buf.String(), registry.ClientSecretPrefix) {
		t.Error("the registry's file holds a client secret")
	}
}

func TestClientSecretRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")
	e.mustWorkload(t, "old", "orders")
	if _, _, err := e.reg.RetireWorkload(ctx, "old", "gone", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		workload string
		ttl      time.Duration
		kind     fail.Kind
		field    string
	}{
		{"bad workload id", "Bot", 0, fail.Invalid, "workload_id"},
		{"unknown workload", "nobody", 0, fail.NotFound, ""},
		{"retired workload", "old", 0, fail.Precondition, ""},
		{"negative ttl", "bot", -time.Hour, fail.Invalid, "ttl"},
		{"ttl too short", "bot", time.Second, fail.Invalid, "ttl"},
		{"ttl over 90 days", "bot", registry.MaxClientSecretTTL + time.Hour, fail.Invalid, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.reg.CreateClientSecret(ctx, tc.workload, tc.ttl, "", "alice")
			checkErr(t, err, tc.kind, tc.field)
		})
	}
	if _, err := e.reg.RevokeClientSecret(ctx, "bot", "cs-unknown", "secret rotated", "bob"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("revoke unknown secret: %v", err)
	}
	if _, err := e.reg.ListClientSecrets(ctx, "nobody"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("list for unknown workload: %v", err)
	}
}
