package pdp_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/token"
)

// dpopEnv is an env with a valid token bound to a DPoP key by cnf.jkt.
func dpopEnv(f *testing.F) (*env, *pdptest.DPoPKey, string) {
	e := newEnv(f, pdp.Config{})
	k := pdptest.NewDPoPKey(f)
	tok := e.token(f, func(c *token.Claims) {
		c.Expiry = time.Now().Add(24 * time.Hour).Unix()
		c.Confirmation = &token.Confirmation{JKT: k.Thumbprint(f)}
	})
	return e, k, tok
}

// proofReason fails the test unless d is a decision on the proof alone: granted, or one of the
// proof reasons (the token itself is valid).
func proofReason(t *testing.T, d pdp.Decision) string {
	t.Helper()
	if len(d.Reasons) != 1 || d.Allow != (d.Reasons[0] == pdp.ReasonGranted) {
		t.Fatalf("decision allow=%v reasons %q", d.Allow, d.Reasons)
	}
	switch r := d.Reasons[0]; r {
	case pdp.ReasonGranted, pdp.ReasonProofInvalid, pdp.ReasonProofMismatch, pdp.ReasonProofMissing:
		return r
	default:
		t.Fatalf("a proof got reason %q", r)
		return ""
	}
}

// FuzzCheckDPoP sends arbitrary DPoP headers with a valid DPoP-bound token: the decision is always
// about the proof, and a grant needs a proof signed by the bound key, for this request and token.
func FuzzCheckDPoP(f *testing.F) {
	e, k, tok := dpopEnv(f)
	// A proof is fresh for a minute only (pdp.DPoPProofWindow): a fuzzer that runs longer explores
	// the grant path through FuzzCheckDPoPClaims, which signs every input afresh.
	valid := k.Proof(f, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok})
	for _, s := range []string{"", "a.b.c", valid, valid + "A", valid[:len(valid)/2],
		k.Proof(f, pdptest.DPoPProof{Method: "GET", URI: dpopURI, Token: tok}),
		k.Proof(f, pdptest.DPoPProof{Method: dpopMethod, URI: dpopURI, Token: tok, Header: map[jose.HeaderKey]any{"crit": []string{"x"}}}),
		"eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		d, err := e.pdp.Check(done(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api",
			Proof: pdp.Proof{DPoP: proof, Method: dpopMethod, URI: dpopURI}})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if proofReason(t, d) != pdp.ReasonGranted {
			return
		}
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("granted a proof that does not parse: %v", err)
		}
		payload, err := jws.Verify(k.Private.Public())
		if err != nil {
			t.Fatalf("granted a proof the bound key did not sign: %v", err)
		}
		checkProofClaims(t, payload, dpopMethod, tok)
	})
}

// FuzzCheckDPoPClaims signs fuzzed proof claims with the bound key, the request's method and URI
// fuzzed too: a grant needs a jti, the request's method, a fresh iat and the token's hash.
func FuzzCheckDPoPClaims(f *testing.F) {
	e, k, tok := dpopEnv(f)
	sum := sha256.Sum256([]byte(tok))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	seed := func(claims map[string]any) []byte {
		raw, err := json.Marshal(claims)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	now := time.Now().Unix()
	f.Add(seed(map[string]any{"jti": "j1", "htm": dpopMethod, "htu": dpopURI, "iat": now, "ath": ath}), dpopMethod, dpopURI)
	f.Add(seed(map[string]any{"jti": "j1", "htm": "GET", "htu": "HTTPS://API.example.test:443/%6frders?q#f", "iat": now, "ath": ath}), "GET", dpopURI)
	f.Add(seed(map[string]any{"jti": "", "htm": dpopMethod, "htu": dpopURI, "iat": 1e300, "ath": ath}), dpopMethod, dpopURI)
	f.Add(seed(map[string]any{"jti": "j", "htm": dpopMethod, "htu": "https://a/%zz%", "iat": now}), dpopMethod, "https://a/%zz%")
	f.Add([]byte(`{"jti":1}`), "", "")
	f.Fuzz(func(t *testing.T, payload []byte, method, uri string) {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Private},
			(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", &jose.JSONWebKey{Key: k.Private.Public()}))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.pdp.Check(done(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api",
			Proof: pdp.Proof{DPoP: proof, Method: method, URI: uri}})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if proofReason(t, d) == pdp.ReasonGranted {
			checkProofClaims(t, payload, method, tok)
		}
	})
}

// checkProofClaims fails the test unless a granted proof's claims carry a jti, the method, an iat
// within the window and the token's hash.
func checkProofClaims(t *testing.T, payload []byte, method, tok string) {
	t.Helper()
	var c struct {
		JTI string `json:"jti"`
		HTM string `json:"htm"`
		HTU string `json:"htu"`
		IAT *int64 `json:"iat"`
		ATH string `json:"ath"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("granted proof claims that do not decode: %v", err)
	}
	sum := sha256.Sum256([]byte(tok))
	now := time.Now()
	switch {
	case c.JTI == "", c.HTM != method, c.HTU == "", c.IAT == nil,
		c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]):
		t.Fatalf("granted proof claims %s", payload)
	case time.Unix(*c.IAT, 0).Before(now.Add(-pdp.DPoPProofWindow - 5*time.Second)),
		time.Unix(*c.IAT, 0).After(now.Add(pdp.DPoPProofWindow + 5*time.Second)):
		t.Fatalf("granted a proof with iat %d, now %d", *c.IAT, now.Unix())
	}
}
