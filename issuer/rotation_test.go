package issuer_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// at restarts the issuer on a fresh store with its clock moved by offset, so that a schedule
// that ends near real time can be played: the PDP runs on real time and refuses tokens issued in
// its future, or expired in its past.
func (e *env) at(offset time.Duration) {
	e.t.Helper()
	e.stop()
	e.clock.Reset()
	e.clock.Advance(offset)
	e.path += ".at"
	e.start(true)
}

// hourRequest is a valid request for a credential that lives an hour (the integration's
// maximum), so that one issued on a clock set back still lives in real time.
func (e *env) hourRequest() issuer.Request {
	req := e.request()
	req.TTL = time.Hour
	return req
}

// tick moves the issuer's clock by d and takes the key schedule's due step.
func (e *env) tick(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	if err := issuer.Tick(e.iss); err != nil {
		e.t.Fatal(err)
	}
}

// keyStates returns the state of every signing key, by kid.
func (e *env) keyStates() map[string]issuer.KeyState {
	e.t.Helper()
	keys, err := e.iss.SigningKeys()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]issuer.KeyState{}
	for _, k := range keys {
		out[k.Kid] = k.State
	}
	return out
}

// key returns the signing key kid.
func (e *env) key(kid string) issuer.SigningKey {
	e.t.Helper()
	keys, err := e.iss.SigningKeys()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		if k.Kid == kid {
			return k
		}
	}
	e.t.Fatalf("no signing key %s", kid)
	return issuer.SigningKey{}
}

// nextKey waits for a published next key and returns it.
func (e *env) nextKey() issuer.SigningKey {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := e.iss.SigningKeys()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, k := range keys {
			if k.State == issuer.KeyNext && k.PublishedSequence != 0 {
				return k
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no published next key: %+v", keys)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jwks returns the kids of the issuer's JWKS, in order, checking that each entry is a public key
// with kid, alg and use.
func (e *env) jwks() []string {
	e.t.Helper()
	raw, err := e.iss.JWKS()
	if err != nil {
		e.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		e.t.Fatalf("JWKS %s: %v", raw, err)
	}
	kids := []string{}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() || k.Algorithm == "" || k.Use != "sig" {
			e.t.Fatalf("JWKS entry %+v is not a public signing key", k)
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

func wantKids(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func wantStates(t *testing.T, got map[string]issuer.KeyState, want map[string]issuer.KeyState) {
	t.Helper()
	for kid, w := range want {
		if got[kid] != w {
			t.Fatalf("key %s is %q, want %q (all: %v)", kid, got[kid], w, got)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

// TestKeyRotationSchedule plays the default schedule (a key signs for 24 h, its successor is
// published 1 h ahead, a retired key stays published for the 24 h maximum credential lifetime)
// on the issuer's clock, ending near real time so the real PDP can judge the tokens: the next key
// is published before it signs, takes over on time, the retired key's tokens stay valid and the
// key stays in the JWKS until they have all expired, and every state survives restarts.
func TestKeyRotationSchedule(t *testing.T) {
	e := newEnv(t)
	e.at(-(24*time.Hour + 30*time.Minute))
	a := e.activeKey()
	published := len(keyEvents(t, e.world)) // the world's feed holds the first store's key too
	if a.Activated.IsZero() || a.State != issuer.KeyActive {
		t.Fatalf("first key %+v", a)
	}
	wantKids(t, "JWKS at start", e.jwks(), a.Kid)

	e.tick(22*time.Hour + 50*time.Minute) // T+22h50: the next key is not due for 10 minutes
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyActive})

	e.tick(10*time.Minute + time.Second) // T+23h00: the next key is published, an hour ahead of its turn
	b := e.nextKey()
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyActive, b.Kid: issuer.KeyNext})
	wantKids(t, "JWKS with a next key", e.jwks(), a.Kid, b.Kid)
	if fk, ok := e.world.State().SigningKey(b.Kid); !ok || fk.Public == nil || fk.Revoked() {
		t.Fatalf("the next key is not in the feed: %+v", fk)
	}
	if c := e.issue(e.request()).Credential; c.Kid != a.Kid {
		t.Fatalf("signed by %s before its turn", c.Kid)
	}
	e.reopen() // the schedule survives a restart: the same next key, no new one
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyActive, b.Kid: issuer.KeyNext})
	if n := len(keyEvents(t, e.world)) - published; n != 1 {
		t.Fatalf("%d keys published since the first, want 1", n)
	}

	e.tick(59 * time.Minute) // T+23h59, real time -31m: the last token a signs
	byA := e.issue(e.hourRequest())
	if byA.Credential.Kid != a.Kid {
		t.Fatalf("signed by %s, want %s", byA.Credential.Kid, a.Kid)
	}
	e.tick(2 * time.Minute) // T+24h01: b takes over, a retires
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyRetired, b.Kid: issuer.KeyActive})
	wantKids(t, "JWKS after the rotation", e.jwks(), b.Kid, a.Kid)
	ka := e.key(a.Kid)
	if d := ka.PublishedUntil.Sub(ka.Retired); d < issuer.DefaultKeyRotation || d > issuer.DefaultKeyRotation+5*time.Minute {
		t.Fatalf("the retired key stays published %s after its retirement, want the maximum credential lifetime (24h) and a little", d)
	}
	byB := e.issue(e.hourRequest())
	if byB.Credential.Kid != b.Kid {
		t.Fatalf("signed by %s after the rotation, want %s", byB.Credential.Kid, b.Kid)
	}
	// A retirement is not a revocation: the PDP honours both tokens.
	for _, out := range []issuer.Issued{byA, byB} {
		if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
			t.Fatalf("the PDP says %s for a token signed by %s", got, out.Credential.Kid)
		}
	}
	e.reopen()
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyRetired, b.Kid: issuer.KeyActive})

	e.tick(23*time.Hour + time.Minute) // T+47h02: c is published
	c := e.nextKey()
	e.tick(time.Hour + time.Minute) // T+48h03: c takes over; every token a signed has expired
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyExpired, b.Kid: issuer.KeyRetired, c.Kid: issuer.KeyActive})
	wantKids(t, "JWKS a day after a's retirement", e.jwks(), c.Kid, b.Kid)
	if n := len(keyEvents(t, e.world)) - published; n != 2 {
		t.Fatalf("%d keys published since the first, want 2", n)
	}
}

// TestRevokedKeysLeaveJWKS: a revoked key leaves the JWKS at once, whatever its state, and the
// issuer carries on: a revoked next key is replaced by another, a revoked retired key is simply
// dropped, and the PDP denies its tokens.
func TestRevokedKeysLeaveJWKS(t *testing.T) {
	e := newEnv(t)
	e.cfg.Feed = revokersvc.NewSource(e.world.Conn())
	e.at(-(time.Hour + 30*time.Minute))
	a := e.activeKey()
	e.cfg.KeyRotation, e.cfg.KeyPrepublish = time.Hour, 10*time.Minute
	e.reopen()
	e.tick(50*time.Minute + time.Second) // -39m: the next key is published
	b := e.nextKey()

	e.world.RevokeSigningKey(b.Kid)
	e.waitState(b.Kid, issuer.KeyRevoked)
	if plain, sealed, err := issuer.StoredPrivate(e.st, b.Kid); err != nil || plain || sealed {
		t.Fatalf("the revoked key's private half is still stored (%v, %v, %v)", plain, sealed, err)
	}
	if err := issuer.Tick(e.iss); err != nil {
		t.Fatal(err)
	}
	c := e.nextKey()
	if c.Kid == b.Kid {
		t.Fatal("the revoked next key is next again")
	}
	wantKids(t, "JWKS after revoking the next key", e.jwks(), a.Kid, c.Kid)

	byA := e.issue(e.hourRequest())
	e.tick(10*time.Minute + time.Second) // -29m: c takes over from a
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyRetired, b.Kid: issuer.KeyRevoked, c.Kid: issuer.KeyActive})
	if got := e.world.Check(byA.Token, "invoices:read", audience, 0); got != "granted" {
		t.Fatalf("the PDP says %s for a token of the retired key", got)
	}

	revoked := e.world.RevokeSigningKey(a.Kid) // the retired key is revoked: its tokens die at once
	e.waitState(a.Kid, issuer.KeyRevoked)
	wantKids(t, "JWKS after revoking the retired key", e.jwks(), c.Kid)
	if got := e.world.Check(byA.Token, "invoices:read", audience, revoked); got != "key_revoked" {
		t.Fatalf("the PDP says %s for a token of the revoked key", got)
	}
	if out := e.issue(e.request()); out.Credential.Kid != c.Kid {
		t.Fatalf("signed by %s, want %s", out.Credential.Kid, c.Kid)
	}
}

// waitState waits until key kid is in state want.
func (e *env) waitState(kid string, want issuer.KeyState) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.keyStates()[kid] != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("key %s is %s, want %s", kid, e.keyStates()[kid], want)
		}
	}
}

// TestSigningAlgorithmChange: a new algorithm takes effect through a rotation made due at once: a
// key of the new algorithm is published ahead of its turn, then signs; a next key made for an
// algorithm given up meanwhile is dropped without ever signing.
func TestSigningAlgorithmChange(t *testing.T) {
	e := newEnv(t)
	e.cfg.KeyPrepublish = 10 * time.Minute
	e.at(-25 * time.Minute)
	a := e.activeKey()

	e.cfg.SigningAlgorithm = issuer.ES256
	e.reopen()
	b := e.nextKey()
	if b.Algorithm != issuer.ES256 || e.activeKey().Kid != a.Kid {
		t.Fatalf("next key %s/%s with %s active; want an ES256 next key and %s active", b.Kid, b.Algorithm, e.activeKey().Kid, a.Kid)
	}

	e.cfg.SigningAlgorithm = issuer.RS256
	e.reopen()
	c := e.nextKey()
	if c.Algorithm != issuer.RS256 {
		t.Fatalf("next key %s is %s, want RS256", c.Kid, c.Algorithm)
	}
	wantStates(t, e.keyStates(), map[string]issuer.KeyState{a.Kid: issuer.KeyActive, b.Kid: issuer.KeyExpired, c.Kid: issuer.KeyNext})
	wantKids(t, "JWKS", e.jwks(), a.Kid, c.Kid)

	e.tick(5 * time.Minute) // -20m: c has been published only 5 minutes
	if k := e.activeKey(); k.Kid != a.Kid {
		t.Fatalf("%s took over before it was published for KeyPrepublish", k.Kid)
	}
	e.tick(5*time.Minute + time.Second) // -15m: c takes over
	out := e.issue(e.hourRequest())
	if out.Credential.Kid != c.Kid {
		t.Fatalf("signed by %s, want the RS256 key %s", out.Credential.Kid, c.Kid)
	}
	jws, err := jose.ParseSignedCompact(out.Token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || jws.Signatures[0].Protected.KeyID != c.Kid {
		t.Fatalf("token is not RS256 by %s: %v", c.Kid, err)
	}
	if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
		t.Fatalf("the PDP says %s for the RS256 token", got)
	}
}
