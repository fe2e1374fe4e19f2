package issuer

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
)

// DPoP proofs at the token endpoint (RFC 9449 section 4.3).
const (
	// DPoPType is the typ header of a DPoP proof.
	DPoPType = "dpop+jwt"
	// DefaultDPoPWindow is how far a proof's iat may lie from the issuer's clock, either way,
	// when Config.DPoPWindow is zero. A proof is made for one request and sent at once, so a
	// minute covers clock skew and nothing more.
	DefaultDPoPWindow = 60 * time.Second
	// MaxDPoPProofSize bounds a proof, so a request cannot make the issuer parse megabytes.
	MaxDPoPProofSize = 8 << 10
)

// dpopAlgorithms pins the algorithms a DPoP proof may be signed with: asymmetric ones only, so
// "none" and MAC algorithms (with a public key abused as the secret) are refused at parsing.
var dpopAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

// dpopReplayScope scopes DPoP proof jtis in the replay cache. It is not a valid workload id, so
// proof jtis and client assertion jtis never collide.
const dpopReplayScope = "#dpop"

// dpopProofClaims are the claims of a DPoP proof.
type dpopProofClaims struct {
	JTI string `json:"jti"`
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	IAT *int64 `json:"iat"`
}

// checkDPoP verifies the DPoP proof of a token request made with method to endpoint (its URL,
// without query or fragment) and returns the proof key's RFC 7638 thumbprint, the token's cnf.jkt.
// The proof's jti is recorded, durably, in the replay cache under the key's thumbprint until the
// proof could no longer be accepted. Every defect is an Invalid error wrapping
// ErrInvalidDPoPProof, whose message never repeats the proof. A nonce claim is not required and
// not checked: the issuer sends no DPoP-Nonce challenges (optional in RFC 9449 section 8); the
// iat window and the jti replay cache bound a proof's reuse instead. An ath claim has no meaning
// at the token endpoint and is ignored.
func (i *Issuer) checkDPoP(proof, method, endpoint string) (string, error) {
	if len(proof) > MaxDPoPProofSize {
		return "", dpopError("the DPoP proof is larger than %d bytes", MaxDPoPProofSize)
	}
	jws, err := jose.ParseSignedCompact(proof, dpopAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return "", dpopError("the DPoP proof is not a compact JWS signed with EdDSA, ES256 or RS256 whose header carries a public jwk")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != DPoPType {
		return "", dpopError("the DPoP proof's typ header must be %q", DPoPType)
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.Valid() {
		return "", dpopError("the DPoP proof's header must carry the public key it is signed with (jwk)")
	}
	if !h.JSONWebKey.IsPublic() {
		return "", dpopError("the DPoP proof's jwk holds a private key; send the public key only, and replace this key")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return "", dpopError("the DPoP proof's signature does not verify with its jwk")
	}
	var c dpopProofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", dpopError("the DPoP proof's claims are malformed")
	}
	now := i.cfg.Now()
	switch {
	case c.JTI == "" || len(c.JTI) > maxJTI:
		return "", dpopError("the DPoP proof must carry a jti of 1 to %d bytes, unique per proof", maxJTI)
	case c.HTM != method:
		return "", dpopError("the DPoP proof's htm must be %q, the method of this request", method)
	case !sameHTU(c.HTU, endpoint):
		return "", dpopError("the DPoP proof's htu must be the token endpoint %q", endpoint)
	case c.IAT == nil:
		return "", dpopError("the DPoP proof must carry iat")
	}
	iat := time.Unix(*c.IAT, 0)
	if iat.Before(now.Add(-i.cfg.DPoPWindow)) || iat.After(now.Add(i.cfg.DPoPWindow)) {
		return "", dpopError("the DPoP proof's iat is more than %s from the issuer's clock; make a fresh proof for each request", i.cfg.DPoPWindow)
	}
	sum, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", dpopError("the DPoP proof's jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(sum)
	// A proof is accepted until iat+window; it is remembered a little longer than that.
	key := scoped(dpopReplayScope, []byte(jkt+"\x00"+c.JTI))
	if err := i.consumeOnce(key, iat.Add(i.cfg.DPoPWindow+time.Second), now); err != nil {
		if fail.KindOf(err) == fail.Unauthenticated {
			return "", dpopError("the DPoP proof was already used (its jti is single-use); make a fresh proof for each request")
		}
		return "", err
	}
	return jkt, nil
}

func dpopError(format string, args ...any) error {
	e := fail.Invalidf("dpop", format, args...)
	e.Err = ErrInvalidDPoPProof
	return e
}

// sameHTU reports whether a proof's htu names the endpoint: scheme and host compared
// case-insensitively, default ports dropped, an empty path read as "/", and no query or fragment
// in the claim (RFC 9449 section 4.3, point 9).
func sameHTU(claim, endpoint string) bool {
	a, ok := parseHTU(claim)
	if !ok {
		return false
	}
	b, ok := parseHTU(endpoint)
	return ok && a == b
}

func parseHTU(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", false
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return "", false
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + ":" + port + path, true
}
