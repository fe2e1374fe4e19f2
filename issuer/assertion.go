package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/treaty-dev/treaty/fail"
)

// AssertionType is the client_assertion_type of a private_key_jwt client assertion (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// The limits client assertions are held to.
const (
	// MaxAssertionSize bounds an assertion, so a request cannot make the issuer parse megabytes.
	MaxAssertionSize = 8 << 10
	// MaxAssertionLifetime is how far ahead an assertion's exp may be.
	MaxAssertionLifetime = 5 * time.Minute
	// ClockSkew is the clock difference tolerated between a workload and the issuer.
	ClockSkew = 60 * time.Second
	// maxJTI bounds the jti kept in the replay cache.
	maxJTI = 256
	// maxWorkloadKeys bounds how many registered keys one assertion is tried against.
	maxWorkloadKeys = 16
)

// assertionAlgorithms pins the algorithms accepted for client assertions: those of the keys
// workloads register (EdDSA, ES256, RS256), so "none", HMAC (and the confusion of a public key
// used as an HMAC secret) and everything else are refused before any key is touched. Each key
// then verifies only assertions of its own registered algorithm.
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}

// SignAssertion builds an RFC 7523 client assertion for workloadID: iss and sub are the workload,
// aud the issuer identifier, iat now, exp now+ttl, a random jti, signed by key with the algorithm
// of its type: EdDSA for Ed25519, ES256 for ECDSA P-256, RS256 for RSA of 2048 bits or more. The kid header is the
// key's RFC 7638 thumbprint. ttl must be positive and at most MaxAssertionLifetime.
func SignAssertion(workloadID, audience string, key crypto.Signer, now time.Time, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxAssertionLifetime {
		return "", fmt.Errorf("client assertion lifetime %s must be positive and at most %s", ttl, MaxAssertionLifetime)
	}
	if key == nil {
		return "", errors.New("client assertion needs a signing key")
	}
	alg := keyAlgorithm(key.Public())
	if alg == "" {
		return "", fmt.Errorf("client assertions are signed with Ed25519, ECDSA P-256 or RSA (2048 bits or more) keys, not %T", key.Public())
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return "", err
	}
	var sk any = cryptosigner.Opaque(key)
	switch priv := key.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey:
		sk = priv
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: sk, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("client assertion signer: %w", err)
	}
	jti, err := randomID()
	if err != nil {
		return "", err
	}
	claims := jwt.Claims{
		Issuer: workloadID, Subject: workloadID, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl)), ID: jti,
	}
	out, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return out, nil
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// authenticate verifies a private_key_jwt client assertion and returns the workload it
// authenticates, with the assertion's jti to record in the replay cache: in the transaction that
// records the credential (record), or on its own if issuance is refused (consume). A jti the cache
// holds already is refused here. Every failure is Unauthenticated (a wrong assertion type is Invalid), with a message that never
// repeats the assertion.
func (i *Issuer) authenticate(ctx context.Context, assertionType, assertion string) (Workload, *replayClaim, error) {
	if assertionType != "" && assertionType != AssertionType {
		return Workload{}, nil, fail.Invalidf("client_assertion_type", "client_assertion_type must be empty or %q", AssertionType)
	}
	if assertion == "" {
		return Workload{}, nil, fail.Invalidf("client_assertion", "client_assertion is required: a JWT signed by the workload's registered key")
	}
	if len(assertion) > MaxAssertionSize {
		return Workload{}, nil, fail.Unauthenticatedf("client assertion is larger than %d bytes", MaxAssertionSize)
	}
	tok, err := jwt.ParseSigned(assertion, assertionAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return Workload{}, nil, fail.Unauthenticatedf("client assertion is not a compact JWS signed with EdDSA, ES256 or RS256, the only algorithms accepted")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Workload{}, nil, fail.Unauthenticatedf("client assertion claims are malformed")
	}
	switch {
	case unverified.Issuer == "" || unverified.Subject == "":
		return Workload{}, nil, fail.Unauthenticatedf("client assertion must carry iss and sub, both the workload id")
	case unverified.Issuer != unverified.Subject:
		return Workload{}, nil, fail.Unauthenticatedf("client assertion iss and sub must be equal: both are the workload id")
	case !fail.ValidID(unverified.Issuer):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion iss is not a valid workload id")
	}
	// An unknown client and a signature that does not verify get the same answer, so that
	// unauthenticated callers cannot tell which workload ids exist; the log tells them apart.
	w, err := i.cfg.Directory.Workload(ctx, unverified.Issuer)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			i.log.Info("issuer: client assertion for an unknown workload", "workload", unverified.Issuer)
			return Workload{}, nil, errBadClient
		}
		return Workload{}, nil, directoryError(err, "the client")
	}
	if !verifyWithKeys(tok, w.Keys) {
		i.log.Info("issuer: client assertion signature does not verify with the workload's keys", "workload", w.ID)
		return Workload{}, nil, errBadClient
	}
	// The claims decoded above are now verified: go-jose verifies the very payload bytes it
	// decoded them from (a compact JWS has one payload), so they are not decoded a second time.
	claims := unverified
	now := i.cfg.Now()
	switch {
	case claims.Issuer != w.ID || claims.Subject != w.ID:
		return Workload{}, nil, fail.Unauthenticatedf("client assertion iss and sub must be the workload id")
	case !i.assertionAudienceOK(claims.Audience):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion aud must contain the issuer identifier %q or the token endpoint URL", i.cfg.IssuerURL)
	case claims.Expiry == nil:
		return Workload{}, nil, fail.Unauthenticatedf("client assertion must carry exp")
	case now.After(claims.Expiry.Time().Add(ClockSkew)):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion has expired; sign a fresh one")
	case claims.Expiry.Time().After(now.Add(MaxAssertionLifetime + ClockSkew)):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion exp is more than %s ahead; sign short-lived assertions", MaxAssertionLifetime)
	case claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(ClockSkew)):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion iat is in the future; check the workload's clock")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(ClockSkew)):
		return Workload{}, nil, fail.Unauthenticatedf("client assertion is not valid yet (nbf is in the future)")
	case claims.ID == "":
		return Workload{}, nil, fail.Unauthenticatedf("client assertion must carry a jti, unique per assertion")
	case len(claims.ID) > maxJTI:
		return Workload{}, nil, fail.Unauthenticatedf("client assertion jti is longer than %d bytes", maxJTI)
	}
	claim := &replayClaim{workload: w.ID, jti: claims.ID, expires: claims.Expiry.Time().Add(ClockSkew)}
	if err := i.seen(claim, now); err != nil {
		return Workload{}, nil, err
	}
	return w, claim, nil
}

// errBadClient is the one answer to an assertion from an unknown client or with a signature that
// does not verify.
var errBadClient = fail.Unauthenticatedf("client authentication failed: the assertion is not signed by a key registered for its client")

// verifyWithKeys verifies tok's signature against the workload's keys, the one its kid header
// names first. A key verifies only an assertion whose alg is the key's own.
func verifyWithKeys(tok *jwt.JSONWebToken, keys []WorkloadKey) bool {
	kid, alg := tok.Headers[0].KeyID, tok.Headers[0].Algorithm
	ordered := make([]WorkloadKey, 0, len(keys))
	for _, k := range keys {
		if kid != "" && k.KeyID == kid {
			ordered = append([]WorkloadKey{k}, ordered...)
		} else {
			ordered = append(ordered, k)
		}
	}
	for n, k := range ordered {
		if n == maxWorkloadKeys {
			break
		}
		if keyAlgorithm(k.Public) != alg || (k.Algorithm != "" && k.Algorithm != alg && !(alg == string(jose.EdDSA) && k.Algorithm == "Ed25519")) {
			continue
		}
		if tok.Claims(k.Public) == nil { // verifies, decoding nothing
			return true
		}
	}
	return false
}

// keyAlgorithm returns the one JWS algorithm a workload key of this type signs with ("Ed25519"
// keys sign EdDSA, RFC 9864's fully-specified name for the same thing), or "" for another type.
func keyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return string(jose.EdDSA)
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return string(jose.ES256)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return string(jose.RS256)
		}
	}
	return ""
}

// unavailable turns a peer's error into one the caller may retry, keeping its message if it was
// already Unavailable.
func unavailable(err error, msg string) error {
	// Always in the issuer's own words: the peer's error (its transport detail, addresses) stays
	// in the cause, for the log, and never reaches a partner's workload.
	return fail.Unavailablef(err, "%s", msg)
}

// directoryError passes on a registry lookup failure other than NotFound: Unavailable as it is
// (the caller may retry), a local fault such as an unusable registered key as an internal error
// (logged, hidden from the caller, and issuance fails closed), and any other kind as Unavailable.
func directoryError(err error, what string) error {
	if fail.KindOf(err) == fail.Internal {
		return fmt.Errorf("issuer: registry lookup of %s: %w", what, err)
	}
	return unavailable(err, fmt.Sprintf("the registry could not be asked about %s; retry", what))
}
