package issuer_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

// checkPublicJWK fails unless raw is a public Ed25519 JWK for kid, without private members.
func checkPublicJWK(t *testing.T, raw []byte, kid string) {
	t.Helper()
	checkJWK(t, raw, kid, "EdDSA")
}

// checkJWK fails unless raw is a public JWK for kid and algorithm alg, without private members.
func checkJWK(t *testing.T, raw []byte, kid, alg string) {
	t.Helper()
	var members map[string]any
	if err := json.Unmarshal(raw, &members); err != nil {
		t.Fatal(err)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := members[private]; ok {
			t.Fatalf("published JWK carries private member %q", private)
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{"EdDSA": {"OKP", "Ed25519"}, "ES256": {"EC", "P-256"}, "RS256": {"RSA", ""}}[alg]
	crv, _ := members["crv"].(string)
	if !jwk.IsPublic() || jwk.KeyID != kid || members["kty"] != want[0] || crv != want[1] || members["alg"] != alg || members["use"] != "sig" {
		t.Fatalf("JWK %s is not the public %s key %s", raw, alg, kid)
	}
	if got, err := issuer.KeyID(jwk.Key); err != nil || got != kid {
		t.Fatalf("kid %s is not the key's RFC 7638 thumbprint %s (%v)", kid, got, err)
	}
}

func TestSigningKeyPublished(t *testing.T) {
	e := newEnv(t)
	key := e.activeKey()
	if key.Algorithm != "EdDSA" || key.Revoked || key.Created.IsZero() {
		t.Fatalf("key = %+v", key)
	}
	checkPublicJWK(t, key.PublicJWK, key.Kid)
	evs := keyEvents(t, e.world)
	if len(evs) != 1 {
		t.Fatalf("%d keys published, want 1", len(evs))
	}
	if evs[0].GetKid() != key.Kid || evs[0].GetAlgorithm() != "EdDSA" || evs[0].GetIssuer() != issuerURL {
		t.Fatalf("published %v", evs[0])
	}
	checkPublicJWK(t, evs[0].GetPublicJwk(), key.Kid)
	if fk, ok := e.world.State().SigningKey(key.Kid); !ok || fk.Public == nil {
		t.Fatal("the feed cannot use the published key")
	}
}

func TestSigningKeyPersists(t *testing.T) {
	e := newEnv(t)
	before := e.activeKey()
	head := e.world.Head()
	e.reopen()
	after := e.activeKey()
	if after.Kid != before.Kid || after.PublishedSequence != before.PublishedSequence {
		t.Fatalf("after restart the key is %s@%d, want %s@%d", after.Kid, after.PublishedSequence, before.Kid, before.PublishedSequence)
	}
	if c := e.issue(e.request()).Credential; c.Kid != before.Kid {
		t.Fatalf("token signed by %s, want %s", c.Kid, before.Kid)
	}
	if e.world.Head() != head {
		t.Fatalf("a restart published something: head %d, was %d", e.world.Head(), head)
	}
}

func TestIssueWaitsForPublication(t *testing.T) {
	e := newEnv(t)
	e.stop()
	e.path += ".fresh" // a new store whose key the relay has not published yet
	e.start(false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.iss.Issue(ctx, e.request())
	wantKind(t, err, fail.Unavailable)
	if keys, _ := e.iss.SigningKeys(); len(keys) != 1 || keys[0].PublishedSequence != 0 {
		t.Fatalf("keys = %+v, want one unpublished key", keys)
	}
	e.runRelay()
	c := e.issue(e.request()).Credential
	if c.Sequence < e.activeKey().PublishedSequence {
		t.Fatalf("tsq %d is before the key's publication", c.Sequence)
	}
}

func TestUnconfirmedPublicationSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.stop()
	e.path += ".fresh"
	e.start(false) // the key is queued in the outbox, and the process stops before it is published
	keys, err := e.iss.SigningKeys()
	if err != nil || len(keys) != 1 || keys[0].PublishedSequence != 0 {
		t.Fatalf("keys = %+v (%v), want one unpublished key", keys, err)
	}
	e.stop()
	e.start(true)
	key := e.activeKey()
	if key.Kid != keys[0].Kid {
		t.Fatalf("after restart the key is %s, want %s", key.Kid, keys[0].Kid)
	}
	// The key is published (queued again at start, so possibly twice), and its recorded sequence
	// is one at which the feed knows it.
	var seqs []uint64
	for _, ev := range e.world.Events() {
		if ev.GetSigningKeyPublished().GetKid() == key.Kid {
			seqs = append(seqs, ev.GetSequence())
		}
	}
	if len(seqs) == 0 || key.PublishedSequence < seqs[0] {
		t.Fatalf("key published at %v, recorded at %d", seqs, key.PublishedSequence)
	}
	e.issue(e.request())
}

func TestLostPublicationSequenceIsRepublished(t *testing.T) {
	e := newEnv(t)
	key := e.activeKey()
	e.stop()
	forgetPublication(t, e.path, key.Kid)
	e.start(true)
	again := e.activeKey()
	if again.Kid != key.Kid || again.PublishedSequence <= key.PublishedSequence {
		t.Fatalf("key %s@%d after losing its sequence, want %s published again after %d", again.Kid, again.PublishedSequence, key.Kid, key.PublishedSequence)
	}
	e.issue(e.request())
}

func TestRevokedKeyRotates(t *testing.T) {
	e := newEnv(t)
	before := e.issue(e.request())
	first := before.Credential
	// The key is revoked in the feed; a request at or after the revocation finds the PDP knows it.
	revoked := e.world.RevokeSigningKey(first.Kid)
	callsBefore := len(e.calls.requests())

	req := e.request()
	req.MinSequence = revoked
	out := e.issue(req)
	second := out.Credential
	if second.Kid == first.Kid {
		t.Fatal("issued with the revoked key")
	}
	keys, err := e.iss.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	newKey, oldKey := keys[0], keys[1]
	if newKey.Kid != second.Kid || !newKey.Active || newKey.Revoked || newKey.PublishedSequence <= revoked {
		t.Fatalf("new key = %+v, want active, published after the revocation at %d", newKey, revoked)
	}
	if oldKey.Kid != first.Kid || oldKey.Active || !oldKey.Revoked {
		t.Fatalf("old key = %+v, want revoked and inactive", oldKey)
	}
	checkPublicJWK(t, newKey.PublicJWK, newKey.Kid)

	// The new key reached the feed; the PDP was asked again with it, at its sequence.
	fk, ok := e.world.State().SigningKey(second.Kid)
	if !ok || fk.Revoked() || fk.Issuer != issuerURL {
		t.Fatalf("new key in the feed: %+v, %v", fk, ok)
	}
	calls := e.calls.requests()[callsBefore:]
	if len(calls) != 2 || calls[0].Kid != first.Kid || calls[1].Kid != second.Kid || calls[1].MinSequence != newKey.PublishedSequence {
		t.Fatalf("authorizer calls %+v, want the old kid, then the new kid at %d", calls, newKey.PublishedSequence)
	}
	if second.Sequence < newKey.PublishedSequence {
		t.Fatalf("tsq %d is before the new key's publication at %d", second.Sequence, newKey.PublishedSequence)
	}
	tok, err := jwt.ParseSigned(out.Token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.Claims
	if err := tok.Claims(fk.Public, &claims); err != nil {
		t.Fatalf("token does not verify with the new published key: %v", err)
	}

	// The real PDP refuses what the old key signed and accepts what the new one signs.
	if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
		t.Errorf("token signed by the new key: PDP says %s, want granted", got)
	}
	if got := e.world.Check(before.Token, "invoices:read", audience, 0); got != "key_revoked" {
		t.Errorf("token signed by the revoked key: PDP says %s, want key_revoked", got)
	}

	// The rotation is durable.
	e.reopen()
	if k := e.activeKey(); k.Kid != second.Kid {
		t.Fatalf("after restart the active key is %s, want %s", k.Kid, second.Kid)
	}
	if c := e.issue(e.request()).Credential; c.Kid != second.Kid {
		t.Fatalf("after restart signed by %s", c.Kid)
	}
}

// TestRevokedKeyStaysRevokedWhenRepublished covers a key revoked while the issuer was down, after
// it had lost the key's feed sequence: the restart publishes the key again, which must not lift
// the revocation, and the next issuance rotates away from it.
func TestRevokedKeyStaysRevokedWhenRepublished(t *testing.T) {
	e := newEnv(t)
	key := e.activeKey()
	e.stop()
	forgetPublication(t, e.path, key.Kid)
	revoked := e.world.RevokeSigningKey(key.Kid)
	e.start(true)
	if again := e.activeKey(); again.Kid != key.Kid || again.PublishedSequence <= revoked {
		t.Fatalf("key %s@%d after restart, want %s published again after the revocation at %d", again.Kid, again.PublishedSequence, key.Kid, revoked)
	}
	if fk, ok := e.world.State().SigningKey(key.Kid); !ok || fk.RevokedSequence != revoked {
		t.Fatalf("republished key in the feed: %+v, want still revoked at %d", fk, revoked)
	}
	c := e.issue(e.request()).Credential
	if c.Kid == key.Kid {
		t.Fatal("issued with the revoked key")
	}
	if n := len(keyEvents(t, e.world)); n != 3 {
		t.Fatalf("%d key publications, want 3 (the key twice, then its successor)", n)
	}
}

func TestConcurrentRequestsRotateOnce(t *testing.T) {
	e := newEnv(t)
	kid := e.activeKey().Kid
	revoked := e.world.RevokeSigningKey(kid)
	reqs := make([]issuer.Request, 6)
	for i := range reqs {
		reqs[i] = e.request()
		reqs[i].MinSequence = revoked
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	for _, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.iss.Issue(context.Background(), req)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Issue: %v", err)
		}
	}
	if n := len(keyEvents(t, e.world)); n != 2 {
		t.Fatalf("%d keys published, want 2 (one rotation)", n)
	}
}

func TestConfigValidation(t *testing.T) {
	e := newEnv(t)
	for name, edit := range map[string]func(c *issuer.Config){
		"no store":         func(c *issuer.Config) { c.Store = nil },
		"no relay":         func(c *issuer.Config) { c.Relay = nil },
		"no directory":     func(c *issuer.Config) { c.Directory = nil },
		"no authorizer":    func(c *issuer.Config) { c.Authorizer = nil },
		"no issuer URL":    func(c *issuer.Config) { c.IssuerURL = "" },
		"relative URL":     func(c *issuer.Config) { c.IssuerURL = "treaty.test" },
		"URL with query":   func(c *issuer.Config) { c.IssuerURL = "https://treaty.test/?a=b" },
		"negative max TTL": func(c *issuer.Config) { c.MaxCredentialTTL = -time.Hour },
		"HS256":            func(c *issuer.Config) { c.SigningAlgorithm = "HS256" },
		"alg none":         func(c *issuer.Config) { c.SigningAlgorithm = "none" },
		"ES384":            func(c *issuer.Config) { c.SigningAlgorithm = "ES384" },
		"rotation too short": func(c *issuer.Config) {
			c.KeyRotation = 30 * time.Second
			c.KeyPrepublish = time.Second
		},
		"prepublish as long as rotation": func(c *issuer.Config) { c.KeyRotation, c.KeyPrepublish = time.Hour, time.Hour },
		"negative rotation":              func(c *issuer.Config) { c.KeyRotation = -time.Hour },
		"negative prepublish":            func(c *issuer.Config) { c.KeyPrepublish = -time.Hour },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := e.cfg
			cfg.Store, cfg.Relay = e.st, e.relay
			edit(&cfg)
			if iss, err := issuer.New(cfg); err == nil {
				iss.Close()
				t.Fatal("New succeeded")
			}
		})
	}
	if got := e.iss.MaxCredentialTTL(); got != token.DefaultMaxLifetime {
		t.Errorf("MaxCredentialTTL = %s, want the default", got)
	}
	if got := e.iss.IssuerURL(); got != issuerURL {
		t.Errorf("IssuerURL = %q", got)
	}
}

// TestFeedRevocationRotatesAtOnce: with the feed followed, revoking the active key makes the
// issuer rotate without waiting for an issuance to be denied, and the next issuance goes straight
// through with the new key.
func TestFeedRevocationRotatesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.cfg.Feed = revokersvc.NewSource(e.world.Conn())
	e.reopen()
	first := e.activeKey()
	revoked := e.world.RevokeSigningKey(first.Kid)

	var next issuer.SigningKey
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if next = e.activeKey(); next.Kid != first.Kid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the issuer did not rotate after its key was revoked in the feed")
		}
	}
	if next.PublishedSequence <= revoked {
		t.Fatalf("new key published at %d, not after the revocation at %d", next.PublishedSequence, revoked)
	}
	callsBefore := len(e.calls.requests())
	out := e.issue(e.request())
	if out.Credential.Kid != next.Kid {
		t.Fatalf("issued with %s, want the new key %s", out.Credential.Kid, next.Kid)
	}
	if calls := e.calls.requests()[callsBefore:]; len(calls) != 1 {
		t.Fatalf("the PDP was asked %d times; one question should do with the key already rotated", len(calls))
	}
	if r := e.world.Check(out.Token, "invoices:read", audience, 0); r != "granted" {
		t.Fatalf("the PDP says %s for a token signed with the new key", r)
	}

	// A key revoked while the issuer is down is caught at the next start.
	e.stop()
	e.world.RevokeSigningKey(next.Kid)
	e.start(true)
	for deadline := time.Now().Add(10 * time.Second); e.activeKey().Kid == next.Kid; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the issuer kept a key revoked while it was down")
		}
	}
}

// TestIssuerURLChangeRotates: a key is published for one issuer identifier, so when the identifier
// changes the issuer retires the key (its tokens stay valid) and publishes a new one, instead of
// minting tokens the PDP would deny as wrong_issuer.
func TestIssuerURLChangeRotates(t *testing.T) {
	e := newEnv(t)
	before := e.issue(e.request())
	oldKid := before.Credential.Kid

	e.cfg.IssuerURL = "https://treaty.example"
	e.reopen()
	key := e.activeKey()
	if key.Kid == oldKid {
		t.Fatal("the issuer kept signing with the key published for the old identifier")
	}
	if fk, ok := e.world.State().SigningKey(key.Kid); !ok || fk.Issuer != "https://treaty.example" {
		t.Fatalf("new key in the feed: %+v, %v", fk, ok)
	}
	a, err := issuer.SignAssertion(workload, "https://treaty.example", e.keys[workload], e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req := e.request()
	req.Assertion = a
	out := e.issue(req)
	if r := e.world.Check(out.Token, "invoices:read", audience, 0); r != "granted" {
		t.Fatalf("the PDP says %s for a token under the new identifier", r)
	}
	if r := e.world.Check(before.Token, "invoices:read", audience, 0); r != "granted" {
		t.Fatalf("the PDP says %s for a token signed before the change: the retired key must stay valid", r)
	}
	keys, err := e.iss.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Kid == oldKid && (k.Active || k.Revoked) {
			t.Fatalf("old key = %+v, want retired: neither active nor revoked", k)
		}
	}
}

// forgetPublication makes the stopped issuer's store forget the feed sequence of key kid, as if
// the process had stopped before the relay confirmed its publication.
func forgetPublication(t *testing.T, path, kid string) {
	t.Helper()
	st, err := store.OpenBolt(path, issuer.Schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.ForgetPublication(st, kid); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}
