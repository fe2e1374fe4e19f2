package pdp

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/token"
)

// DPoPProofWindow is how far a DPoP proof's iat may lie from the PDP's clock, either way. Proofs
// are made for one request and sent at once (RFC 9449 section 11.1), so a minute covers clock
// skew and nothing more.
const DPoPProofWindow = 60 * time.Second

// DPoPType is the typ header of a DPoP proof JWT (RFC 9449 section 4.2).
const DPoPType = "dpop+jwt"

// dpopAlgorithms are the asymmetric algorithms a DPoP proof may use; "none" and MAC algorithms
// are refused at parse time, as RFC 9449 section 4.3 requires.
var dpopAlgorithms = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// checkProof checks the proof of possession a cnf claim demands, or returns "" for a credential
// without one. tok is the access token a DPoP proof's ath must hash. In claims mode the caller
// verified the token itself and may not send it: then tok is "" and ath is not checked, since
// there is nothing to hash; the enforcement point that verified the token is trusted to have
// matched it (a trusted caller could equally have sent claims without cnf).
func checkProof(cnf *token.Confirmation, pr *Proof, tok string, now time.Time) string {
	if cnf == nil {
		return ""
	}
	if cnf.JKT == "" && cnf.X5TS256 == "" {
		return ReasonProofMissing // bound to something this PDP cannot check: never a bearer token
	}
	if cnf.X5TS256 != "" {
		if pr.CertThumbprint == "" {
			return ReasonProofMissing
		}
		if !constantTimeEqual(cnf.X5TS256, pr.CertThumbprint) {
			return ReasonProofMismatch
		}
	}
	if cnf.JKT != "" {
		if pr.DPoP == "" {
			return ReasonProofMissing
		}
		return checkDPoP(pr, cnf.JKT, tok, now)
	}
	return ""
}

// dpopClaims are the claims of a DPoP proof JWT.
type dpopClaims struct {
	JTI string `json:"jti"`
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	IAT *int64 `json:"iat"`
	ATH string `json:"ath"`
}

// checkDPoP checks a DPoP proof as RFC 9449 section 4.3 lists, against the key thumbprint jkt
// the credential is bound to and the access token tok ("" to skip ath). The proof's jti is not
// remembered: replay of a proof within DPoPProofWindow is left to the enforcement point, which
// sees the requests (RFC 9449 section 11.1 makes jti tracking the resource server's choice).
func checkDPoP(pr *Proof, jkt, tok string, now time.Time) string {
	if len(pr.DPoP) > MaxTokenBytes {
		return ReasonProofInvalid
	}
	jws, err := jose.ParseSignedCompact(pr.DPoP, dpopAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return ReasonProofInvalid
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, DPoPType) || h.JSONWebKey == nil || !h.JSONWebKey.Valid() || !h.JSONWebKey.IsPublic() {
		return ReasonProofInvalid
	}
	// The thumbprint first: a proof made with another key is refused before its signature costs.
	thumb, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return ReasonProofInvalid
	}
	if !constantTimeEqual(base64.RawURLEncoding.EncodeToString(thumb), jkt) {
		return ReasonProofMismatch
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return ReasonProofInvalid
	}
	var c dpopClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil {
		return ReasonProofInvalid
	}
	// Methods are case-sensitive (RFC 9110 section 9.1).
	if c.HTM != pr.Method || !sameHTU(c.HTU, pr.URI) {
		return ReasonProofInvalid
	}
	if iat := time.Unix(*c.IAT, 0); iat.Before(now.Add(-DPoPProofWindow)) || iat.After(now.Add(DPoPProofWindow)) {
		return ReasonProofInvalid
	}
	if tok != "" {
		sum := sha256.Sum256([]byte(tok))
		if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return ReasonProofMismatch
		}
	}
	return ""
}

// constantTimeEqual compares two strings in time that depends only on their lengths, so that a
// thumbprint is not guessed byte by byte from timings.
func constantTimeEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// htu is an HTTP URI reduced to what RFC 9449 compares: no query, no fragment, and the syntax-
// and scheme-based normalization of RFC 3986 sections 6.2.2 and 6.2.3 (case of scheme and host,
// default port, empty path, percent-encoding).
type htu struct {
	scheme, host, port, path string
}

// sameHTU reports whether a proof's htu names the request's URI.
func sameHTU(claim, uri string) bool {
	a, ok := parseHTU(claim)
	if !ok {
		return false
	}
	b, ok := parseHTU(uri)
	return ok && a == b
}

func parseHTU(raw string) (htu, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return htu{}, false
	}
	out := htu{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	switch {
	case out.scheme != "http" && out.scheme != "https":
		return htu{}, false
	case out.scheme == "http" && out.port == "80", out.scheme == "https" && out.port == "443":
		out.port = ""
	}
	out.path = normalizePercent(u.EscapedPath())
	if out.path == "" {
		out.path = "/"
	}
	return out, true
}

// normalizePercent applies RFC 3986 section 6.2.2's percent-encoding normalization to an escaped
// path: hex digits in upper case, and unreserved characters decoded.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			b.WriteByte(p[i])
			continue
		}
		hi, lo := unhex(p[i+1]), unhex(p[i+2])
		if hi < 0 || lo < 0 {
			b.WriteByte(p[i])
			continue
		}
		if c := byte(hi<<4 | lo); isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String()
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
