package pdptest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/token"
)

// Issuer is the issuer identifier test keys are published for.
const Issuer = "https://issuer.test"

// Key is a real issuer signing key: Ed25519 (Private) unless Signer and Algorithm say otherwise.
type Key struct {
	Kid     string
	Issuer  string
	Private ed25519.PrivateKey
	// Signer and Algorithm, if set, replace Private and EdDSA: an ECDSA or RSA key.
	Signer    crypto.Signer
	Algorithm jose.SignatureAlgorithm
}

// NewKey generates an Ed25519 signing key for Issuer.
func NewKey(tb testing.TB, kid string) *Key {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &Key{Kid: kid, Issuer: Issuer, Private: priv}
}

// NewKeyAlg generates a signing key for Issuer for one of EdDSA, ES256, ES384, RS256 or PS256.
func NewKeyAlg(tb testing.TB, kid string, alg jose.SignatureAlgorithm) *Key {
	tb.Helper()
	var signer crypto.Signer
	var err error
	switch alg {
	case jose.EdDSA:
		return NewKey(tb, kid)
	case jose.ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS256, jose.PS256:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("pdptest: no test keys for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return &Key{Kid: kid, Issuer: Issuer, Signer: signer, Algorithm: alg}
}

// signingKey returns the private key and its algorithm.
func (k *Key) signingKey() (any, jose.SignatureAlgorithm) {
	if k.Signer != nil {
		return k.Signer, k.Algorithm
	}
	return k.Private, jose.EdDSA
}

// Public returns the public key.
func (k *Key) Public() crypto.PublicKey {
	if k.Signer != nil {
		return k.Signer.Public()
	}
	return k.Private.Public()
}

// Published is the event the issuer publishes for the key.
func (k *Key) Published(tb testing.TB) *treatyv1.Event {
	tb.Helper()
	_, alg := k.signingKey()
	jwk, err := (&jose.JSONWebKey{Key: k.Public(), KeyID: k.Kid, Algorithm: string(alg), Use: "sig"}).MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	return &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
		Kid: k.Kid, Algorithm: string(alg), PublicJwk: jwk, Issuer: k.Issuer,
	}}}
}

// Mint signs claims as an access token: the key's algorithm, typ at+jwt, the key's kid.
func (k *Key) Mint(tb testing.TB, c token.Claims) string {
	tb.Helper()
	return k.Sign(tb, c, map[jose.HeaderKey]any{jose.HeaderType: token.Type})
}

// Sign signs any payload (marshalled as JSON) with the given extra headers and the key's kid, for
// tokens that are not quite right.
func (k *Key) Sign(tb testing.TB, payload any, headers map[jose.HeaderKey]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", k.Kid)
	for h, v := range headers {
		opts = opts.WithHeader(h, v)
	}
	priv, alg := k.signingKey()
	return signJSON(tb, jose.SigningKey{Algorithm: alg, Key: priv}, opts, payload)
}

// signJSON signs payload, marshalled as JSON, as a compact JWS, failing the test on any error.
func signJSON(tb testing.TB, key jose.SigningKey, opts *jose.SignerOptions, payload any) string {
	tb.Helper()
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(raw)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Claims returns the claims of a valid token for workload under integration and partner, with
// scope and aud, issued now for ten minutes at feed sequence tsq of epoch.
func Claims(workload, integration, partner, scope, aud, epoch string, tsq uint64) token.Claims {
	now := time.Now()
	return token.Claims{
		Issuer: Issuer, Subject: workload, ClientID: workload, Partner: partner, Integration: integration,
		Scope: scope, Audience: aud, IssuedAt: now.Unix(), Expiry: now.Add(10 * time.Minute).Unix(),
		ID: "jti-" + randomHex(8), Sequence: tsq, Epoch: epoch,
	}
}

// ContractEnd is the contract end of partners built by Partner: far ahead.
var ContractEnd = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

// Partner is a registry change for a partner in the given state, with contract end end.
func Partner(id string, state treatyv1.PartnerState, end time.Time) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
		PartnerId: id, State: state, ContractEndTime: timestamppb.New(end),
	}}}
}

// Integration is a registry change for an integration of partner with a scope ceiling and
// audiences.
func Integration(id, partner string, state treatyv1.IntegrationState, scopes, audiences []string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{
		IntegrationId: id, PartnerId: partner, State: state, AllowedScopes: scopes, Audiences: audiences,
		MaxCredentialTtl: durationpb.New(time.Hour),
	}}}
}

// Workload is a registry change for a workload of integration and partner.
func Workload(id, integration, partner string, state treatyv1.WorkloadState) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{
		WorkloadId: id, IntegrationId: integration, PartnerId: partner, State: state,
	}}}
}

// Publish appends events to log as the registry's and issuer's outboxes do, and returns the
// sequence of the last one.
func Publish(tb testing.TB, log *revoker.Log, events ...*treatyv1.Event) uint64 {
	tb.Helper()
	entries := make([]*treatyv1.PublishEntry, len(events))
	for i, ev := range events {
		entries[i] = &treatyv1.PublishEntry{RequestId: "test-" + randomHex(12), Event: ev}
	}
	seqs, err := log.Publish(context.Background(), entries)
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	return seqs[len(seqs)-1]
}

// Revoke applies a kill-switch request (revoke, or block) and returns its sequence.
func Revoke(tb testing.TB, log *revoker.Log, kind treatyv1.TargetKind, target string) uint64 {
	tb.Helper()
	out, err := log.Revoke(context.Background(), revoker.Request{Kind: kind, Target: target, Reason: "test", Actor: "test"})
	if err != nil {
		tb.Fatalf("revoke %v %s: %v", kind, target, err)
	}
	return out.Sequence
}

// Restore lifts a block and returns the restore's sequence.
func Restore(tb testing.TB, log *revoker.Log, kind treatyv1.TargetKind, target string) uint64 {
	tb.Helper()
	out, err := log.Restore(context.Background(), revoker.Request{Kind: kind, Target: target, Reason: "test", Actor: "test"})
	if err != nil {
		tb.Fatalf("restore %v %s: %v", kind, target, err)
	}
	return out.Sequence
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
