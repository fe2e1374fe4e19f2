package ssf

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// FuzzSETRoundTrip maps fuzzed feed events (any target, id, partner, actor, reason, sequence) to
// SETs, signs them as the transmitter does, and reads them back as a receiver would (RS256 by the
// JWKS, typ secevent+jwt): the receiver reads exactly the claims that were signed, numbers
// included, whatever the strings hold.
func FuzzSETRoundTrip(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tr := &Transmitter{cfg: Config{Issuer: "https://t.example.com", TokenIssuer: "https://treaty.example.com"}, key: key, kid: "k"}
	for _, s := range []struct {
		kind                       uint8
		id, partner, actor, reason string
		seq                        uint64
	}{
		{0, "j1", "acme", "alice", "leaked", 42}, {1, "k1", "", "", "", 1}, {2, "acme-bot", "acme", "bob", "compromised", 1<<63 + 7},
		{3, "acme-api", "", "", "\xff\xfe", 9007199254740993}, {4, "acme", "", "a\"b", "<script>\u2028", 0}, {5, "", "", "", "", 3},
	} {
		f.Add(s.kind, s.id, s.partner, s.actor, s.reason, s.seq)
	}
	jwks := tr.JWKS()
	f.Fuzz(func(t *testing.T, kind uint8, id, partner, actor, reason string, seq uint64) {
		ev := &treatyv1.Event{Sequence: seq, Time: timestamppb.New(time.Unix(1700000000, 0)), Actor: actor, Reason: reason}
		switch kind % 6 {
		case 0:
			ev.Change = &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{Jti: id, PartnerId: partner}}
		case 1:
			ev.Change = &treatyv1.Event_SigningKeyRevoked{SigningKeyRevoked: &treatyv1.SigningKeyRevoked{Kid: id}}
		case 5:
			ev.Change = &treatyv1.Event_GlobalWatermark{GlobalWatermark: &treatyv1.GlobalWatermark{BelowSequence: seq}}
		default:
			ev.Change = &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: treatyv1.TargetKind(kind % 6), TargetId: id}}
		}
		sig, ok := tr.mapEvent(ev)
		if !ok {
			return
		}
		claims := Claims{
			Iss: tr.cfg.Issuer, Jti: setJTI("00112233445566778899aabbccddeeff", "epoch", 1, seq), Iat: 1700000000,
			Aud: "urn:receiver", Txn: txn("epoch", seq), SubID: sig.subject, Events: map[string]map[string]any{sig.eventType: sig.event},
		}
		compact, err := tr.sign(claims)
		if err != nil {
			t.Fatalf("sign %+v: %v", claims, err)
		}
		jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil || len(jws.Signatures) != 1 {
			t.Fatalf("parse SET: %v", err)
		}
		h := jws.Signatures[0].Header
		if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != SETType || h.KeyID != "k" {
			t.Fatalf("SET header typ %q kid %q", typ, h.KeyID)
		}
		payload, err := jws.Verify(jwks.Key("k")[0])
		if err != nil {
			t.Fatalf("SET does not verify with the JWKS: %v", err)
		}
		again := readClaims(t, payload)
		// What was signed, read the same way: JSON carries no invalid UTF-8, so a reason holding
		// some arrives with U+FFFD in its place, on both sides.
		signed, _ := json.Marshal(claims)
		want := readClaims(t, signed)
		if !bytes.Equal(want, again) {
			t.Fatalf("SET claims changed in transit:\nsigned %s\nread   %s", want, again)
		}
	})
}

// readClaims decodes SET claims as a careful receiver does and encodes them again, for comparing.
func readClaims(t *testing.T, payload []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // a receiver that reads numbers as float64 loses feed sequences above 2^53
	var c Claims
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("SET claims %s: %v", payload, err)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
