package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// claims are the claims of a valid assertion for workload at now; tests spoil one at a time.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": workload, "sub": workload, "aud": []string{issuerURL},
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomJTI(),
	}
}

func randomJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign signs c with key under alg, as a client could.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, c map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned builds an `alg: none` JWT.
func unsigned(t *testing.T, c map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	key := e.keys[workload]
	spoil := func(edit func(c map[string]any, now time.Time)) func() string {
		return func() string {
			now := e.clock.Now()
			c := claims(now)
			edit(c, now)
			return sign(t, jose.EdDSA, key, c)
		}
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name          string
		assertionType string
		assertion     func() string
		want          fail.Kind // or -1 for success
		msg           string    // a substring of the error message
	}{
		{"valid", "", spoil(func(map[string]any, time.Time) {}), -1, ""},
		{"valid with explicit type", issuer.AssertionType, spoil(func(map[string]any, time.Time) {}), -1, ""},
		{"expired within skew", "", spoil(func(c map[string]any, now time.Time) { c["exp"] = now.Add(-30 * time.Second).Unix() }), -1, ""},
		{"wrong assertion type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", spoil(func(map[string]any, time.Time) {}), fail.Invalid, "client_assertion_type"},
		{"empty assertion", "", func() string { return "" }, fail.Invalid, "client_assertion is required"},
		{"bad signature", "", func() string {
			a := e.assertion(workload)
			parts := strings.Split(a, ".")
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil {
				t.Fatal(err)
			}
			sig[10] ^= 0x01
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, fail.Unauthenticated, "client authentication failed"},
		{"wrong key", "", func() string { return sign(t, jose.EdDSA, stranger, claims(e.clock.Now())) }, fail.Unauthenticated, "client authentication failed"},
		{"another workload's key", "", func() string { return sign(t, jose.EdDSA, e.keys[sibling], claims(e.clock.Now())) }, fail.Unauthenticated, "client authentication failed"},
		{"wrong audience", "", spoil(func(c map[string]any, _ time.Time) { c["aud"] = []string{"https://elsewhere.test"} }), fail.Unauthenticated, "aud must contain"},
		{"audience missing", "", spoil(func(c map[string]any, _ time.Time) { delete(c, "aud") }), fail.Unauthenticated, "aud must contain"},
		{"expired", "", spoil(func(c map[string]any, now time.Time) {
			c["iat"], c["exp"] = now.Add(-5*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
		}), fail.Unauthenticated, "has expired"},
		{"exp missing", "", spoil(func(c map[string]any, _ time.Time) { delete(c, "exp") }), fail.Unauthenticated, "must carry exp"},
		{"exp too far ahead", "", spoil(func(c map[string]any, now time.Time) { c["exp"] = now.Add(10 * time.Minute).Unix() }), fail.Unauthenticated, "more than 5m0s ahead"},
		{"iat in the future", "", spoil(func(c map[string]any, now time.Time) {
			c["iat"], c["exp"] = now.Add(3*time.Minute).Unix(), now.Add(4*time.Minute).Unix()
		}), fail.Unauthenticated, "iat is in the future"},
		{"nbf in the future", "", spoil(func(c map[string]any, now time.Time) { c["nbf"] = now.Add(3 * time.Minute).Unix() }), fail.Unauthenticated, "not valid yet"},
		{"missing jti", "", spoil(func(c map[string]any, _ time.Time) { delete(c, "jti") }), fail.Unauthenticated, "must carry a jti"},
		{"jti too long", "", spoil(func(c map[string]any, _ time.Time) { c["jti"] = strings.Repeat("j", 300) }), fail.Unauthenticated, "jti is longer"},
		{"alg none", "", func() string { return unsigned(t, claims(e.clock.Now())) }, fail.Unauthenticated, "signed with EdDSA, ES256 or RS256"},
		{"HS256 with the public key as secret", "", func() string {
			return sign(t, jose.HS256, []byte(key.Public().(ed25519.PublicKey)), claims(e.clock.Now()))
		}, fail.Unauthenticated, "signed with EdDSA, ES256 or RS256"},
		{"oversized", "", spoil(func(c map[string]any, _ time.Time) { c["pad"] = strings.Repeat("x", issuer.MaxAssertionSize) }), fail.Unauthenticated, "larger than 8192 bytes"},
		{"not a JWT", "", func() string { return "not.a.jwt" }, fail.Unauthenticated, "signed with EdDSA, ES256 or RS256"},
		{"unknown workload", "", func() string {
			c := claims(e.clock.Now())
			c["iss"], c["sub"] = "nobody", "nobody"
			return sign(t, jose.EdDSA, key, c)
		}, fail.Unauthenticated, "client authentication failed"},
		{"iss differs from sub", "", spoil(func(c map[string]any, _ time.Time) { c["sub"] = sibling }), fail.Unauthenticated, "must be equal"},
		{"iss not an id", "", spoil(func(c map[string]any, _ time.Time) { c["iss"], c["sub"] = "Acme Sync!", "Acme Sync!" }), fail.Unauthenticated, "not a valid workload id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.assertion()
			req := issuer.Request{AssertionType: tc.assertionType, Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience}
			out, err := e.iss.Issue(context.Background(), req)
			if tc.want == -1 {
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if out.Credential.WorkloadID != workload {
					t.Fatalf("issued to %q", out.Credential.WorkloadID)
				}
				return
			}
			wantKind(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
			if a != "" && strings.Contains(err.Error(), a) {
				t.Fatalf("error message repeats the assertion: %v", err)
			}
		})
	}
}

// TestUnknownClientLooksLikeABadSignature: an unauthenticated caller learns nothing about which
// workload ids exist, because an unknown client and a wrong key get the same answer.
func TestUnknownClientLooksLikeABadSignature(t *testing.T) {
	e := newEnv(t)
	unknown := claims(e.clock.Now())
	unknown["iss"], unknown["sub"] = "nobody", "nobody"
	_, other, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, a := range []string{sign(t, jose.EdDSA, e.keys[workload], unknown), sign(t, jose.EdDSA, other, claims(e.clock.Now()))} {
		_, err := e.iss.Issue(context.Background(), issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience})
		wantKind(t, err, fail.Unauthenticated)
		msgs = append(msgs, err.(*fail.Error).Msg)
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("unknown client %q and wrong key %q answer differently", msgs[0], msgs[1])
	}
}

func TestReplayRefused(t *testing.T) {
	e := newEnv(t)
	req := e.request()
	e.issue(req)
	_, err := e.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Unauthenticated)

	// The cache is durable: a restart does not forget the jti.
	e.reopen()
	_, err = e.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Unauthenticated)

	// The same jti from another workload is that workload's own business.
	c := claims(e.clock.Now())
	c["iss"], c["sub"] = sibling, sibling
	first := sign(t, jose.EdDSA, e.keys[sibling], c)
	e.issue(issuer.Request{Assertion: first, Scopes: []string{"invoices:read"}, Audience: audience})
	c["iss"], c["sub"] = workload, workload
	e.issue(issuer.Request{Assertion: sign(t, jose.EdDSA, e.keys[workload], c), Scopes: []string{"invoices:read"}, Audience: audience})
}

func TestReplayConsumedEvenIfIssuanceIsRefused(t *testing.T) {
	e := newEnv(t)
	req := e.request()
	req.Scopes = []string{"admin"} // outside the ceiling: refused after authentication
	_, err := e.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Denied)
	req.Scopes = []string{"invoices:read"}
	_, err = e.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Unauthenticated)
}

// Concurrent requests with one assertion all pass the replay cache's read-only check, so they
// race to the transaction that records the jti with the credential: exactly one wins.
func TestConcurrentReplayIssuesOnce(t *testing.T) {
	e := newEnv(t)
	e.activeKey()
	req := e.request()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.iss.Issue(context.Background(), req)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if fail.KindOf(err) != fail.Unauthenticated {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one assertion succeeded, want 1", ok, n)
	}
	// The losers lost inside the transaction that would have recorded their credentials (a batch
	// shared with the winner, or their own), so the inventory holds the winner's alone.
	creds, _, err := e.iss.ListCredentials(issuer.Filter{WorkloadID: workload}, 0, "")
	if err != nil || len(creds) != 1 {
		t.Fatalf("the inventory holds %d credentials of the workload (%v), want 1", len(creds), err)
	}
}

func TestReplayCacheIsPurged(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.issue(e.request())
	}
	if n, x, err := issuer.ReplayEntries(e.iss); err != nil || n != 3 || x != 3 {
		t.Fatalf("replay cache has %d entries, %d expiries (%v), want 3, 3", n, x, err)
	}
	// Past the assertions' exp plus skew, the next assertion clears them out.
	e.clock.Advance(time.Minute + issuer.ClockSkew + time.Second)
	e.issue(e.request())
	if n, x, err := issuer.ReplayEntries(e.iss); err != nil || n != 1 || x != 1 {
		t.Fatalf("replay cache has %d entries, %d expiries (%v), want 1, 1", n, x, err)
	}
}

func TestSignAssertion(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	a, err := issuer.SignAssertion(workload, issuerURL, key, now, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := issuer.KeyID(key.Public())
	if h := tok.Headers[0]; h.KeyID != kid || h.ExtraHeaders["typ"] != "JWT" || h.Algorithm != "EdDSA" {
		t.Fatalf("header = %+v, want kid %s, typ JWT, alg EdDSA", h, kid)
	}
	var c jwt.Claims
	if err := tok.Claims(key.Public(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != workload || c.Subject != workload || !c.Audience.Contains(issuerURL) || c.ID == "" ||
		c.IssuedAt.Time().Unix() != now.Unix() || c.Expiry.Time().Unix() != now.Add(2*time.Minute).Unix() {
		t.Fatalf("claims = %+v", c)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 6 * time.Minute} {
		if _, err := issuer.SignAssertion(workload, issuerURL, key, now, ttl); err == nil {
			t.Errorf("SignAssertion with ttl %s succeeded", ttl)
		}
	}
}

func TestWorkloadWithSeveralKeys(t *testing.T) {
	pub, second, _ := ed25519.GenerateKey(rand.Reader)
	kid, _ := issuer.KeyID(pub)
	// The registry registers one key per workload so far (CreateWorkload takes one public key), so
	// the second key is added to the real registry's answer.
	e := newEnv(t, withDirectory(faultyDirectory{workload: func(w *issuer.Workload) {
		if w.ID == workload {
			w.Keys = append(w.Keys, issuer.WorkloadKey{KeyID: kid, Algorithm: "Ed25519", Public: pub})
		}
	}}))
	// Either registered key authenticates, whether the kid header names it or not.
	withKid, err := issuer.SignAssertion(workload, issuerURL, second, e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{withKid, sign(t, jose.EdDSA, second, claims(e.clock.Now())), e.assertion(workload)} {
		e.issue(issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience})
	}
}
