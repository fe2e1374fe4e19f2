package pdp

import (
	"encoding/json"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// MaxTokenBytes bounds the size of a token the PDP parses; anything longer is malformed. Treaty
// tokens are a few hundred bytes.
const MaxTokenBytes = 8 << 10

// parseAlgorithms are the JWS algorithms the parser admits. A token is then verified only with the
// algorithm its key was published with (a token whose alg differs is a bad signature), so this list
// only keeps symmetric algorithms and "none" out before any key is looked at.
var parseAlgorithms = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// Verifying a token takes three steps, kept apart so that the verified-token cache slots in
// between them: parse (the header names the key), key (looked up in the decision's state on every
// decision, so a revoked key denies at once), signature (the expensive part). The cache, keyed by
// the raw token, holds the claims together with the *feed.SigningKey they were verified with: the
// feed replaces a key's record whenever it is republished or revoked, so a cached entry is good
// exactly while its key pointer is still the state's.

// verifyToken returns the claims of a token whose signature verifies with a live key of state s,
// and that key, or a deny reason. now is in Unix seconds. A warm cache answers without parsing or
// verifying and without allocating; a token seen for the first time is verified and, if its
// claims are well formed and unexpired, cached. Only verified tokens are cached, so nobody can
// fill the cache without tokens the issuer signed.
//
// When the claims come from the cache, it also returns their entry and the entry's grant memo (the
// zero memo if none). A memo made on s vouches for the key on s already, so then the key is not
// looked up, and nil is returned for it: the caller either grants on the memo or looks the key up.
func (p *PDP) verifyToken(s *feed.State, raw string, now int64) (*verified, grantMemo, *token.Claims, *feed.SigningKey, string) {
	if raw == "" || len(raw) > MaxTokenBytes {
		return nil, grantMemo{}, nil, nil, ReasonMalformedToken
	}
	var h uint64
	if p.tokens != nil {
		h = p.tokens.hash(raw)
		if e := p.tokens.get(raw, h, now); e != nil {
			m := e.loadMemo()
			if m.stateID == s.ID() {
				return e, m, &e.claims, nil, ""
			}
			key, r := signingKey(s, e.kid)
			if r != "" {
				return nil, grantMemo{}, nil, nil, r
			}
			if key == e.key {
				return e, m, &e.claims, key, ""
			}
			// The key was republished since: verify again with the record the state holds now.
		}
	}
	jws, kid, r := parseToken(raw)
	if r != "" {
		return nil, grantMemo{}, nil, nil, r
	}
	key, r := signingKey(s, kid)
	if r != "" {
		return nil, grantMemo{}, nil, nil, r
	}
	c, r := verifySignature(jws, key)
	if r != "" {
		return nil, grantMemo{}, nil, nil, r
	}
	if p.tokens != nil && c.Expiry > now {
		p.tokens.put(raw, h, kid, key, c, now)
	}
	return nil, grantMemo{}, c, key, ""
}

// parseToken parses a compact JWS and returns it with the kid it names, or a deny reason.
func parseToken(raw string) (*jose.JSONWebSignature, string, string) {
	if raw == "" || len(raw) > MaxTokenBytes {
		return nil, "", ReasonMalformedToken
	}
	jws, err := jose.ParseSignedCompact(raw, parseAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", ReasonMalformedToken
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" || !isAccessTokenType(h.ExtraHeaders[jose.HeaderType]) {
		return nil, "", ReasonMalformedToken
	}
	return jws, h.KeyID, ""
}

// isAccessTokenType reports whether a typ header marks an RFC 9068 access token, so that no other
// JWT an issuer key might sign is accepted as one.
func isAccessTokenType(typ any) bool {
	s, ok := typ.(string)
	return ok && (strings.EqualFold(s, token.Type) || strings.EqualFold(s, "application/"+token.Type))
}

// signingKey returns the state's key for kid, or a deny reason. A kid revoked before it was
// published is known only as revoked, and denies as key_revoked.
func signingKey(s *feed.State, kid string) (*feed.SigningKey, string) {
	k, ok := s.SigningKey(kid)
	switch {
	case !ok:
		return nil, ReasonUnknownKey
	case k.Revoked():
		return nil, ReasonKeyRevoked
	case k.Public == nil:
		return nil, ReasonUnknownKey
	}
	return k, ""
}

// verifySignature checks the signature with the key, pinned to the key's published algorithm, and
// decodes the claims, or returns a deny reason.
func verifySignature(jws *jose.JSONWebSignature, key *feed.SigningKey) (*token.Claims, string) {
	if string(jws.Signatures[0].Protected.Algorithm) != key.Algorithm {
		return nil, ReasonBadSignature
	}
	payload, err := jws.Verify(key.Public)
	if err != nil {
		return nil, ReasonBadSignature
	}
	c := new(token.Claims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, ReasonMalformedToken
	}
	if c.Subject == "" || c.Partner == "" || c.Integration == "" || c.ID == "" || c.Expiry == 0 {
		return nil, ReasonMalformedToken // signed by us, yet not an access token: deny
	}
	return c, ""
}
