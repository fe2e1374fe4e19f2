package ssf

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestMapEvent pins the mapping from feed events to SETs that README.md documents.
func TestMapEvent(t *testing.T) {
	tr := &Transmitter{cfg: Config{TokenIssuer: "https://treaty.example.com"}}
	at := timestamppb.New(time.Unix(1700000000, 0))
	ev := func(actor, reason string, change any) *treatyv1.Event {
		e := &treatyv1.Event{Sequence: 42, Time: at, Actor: actor, Reason: reason}
		switch c := change.(type) {
		case *treatyv1.CredentialRevoked:
			e.Change = &treatyv1.Event_CredentialRevoked{CredentialRevoked: c}
		case *treatyv1.SigningKeyRevoked:
			e.Change = &treatyv1.Event_SigningKeyRevoked{SigningKeyRevoked: c}
		case *treatyv1.Blocked:
			e.Change = &treatyv1.Event_Blocked{Blocked: c}
		case *treatyv1.GlobalWatermark:
			e.Change = &treatyv1.Event_GlobalWatermark{GlobalWatermark: c}
		case *treatyv1.Restored:
			e.Change = &treatyv1.Event_Restored{Restored: c}
		case *treatyv1.PartnerChanged:
			e.Change = &treatyv1.Event_PartnerChanged{PartnerChanged: c}
		}
		return e
	}
	cases := []struct {
		name      string
		ev        *treatyv1.Event
		skip      bool
		eventType string
		subject   string
		event     string
	}{
		{
			name:      "credential with partner",
			ev:        ev("alice", "leaked in a log", &treatyv1.CredentialRevoked{Jti: "j1", PartnerId: "acme"}),
			eventType: EventCredentialChange,
			subject:   `{"format":"complex","session":{"format":"jwt_id","iss":"https://treaty.example.com","jti":"j1"},"tenant":{"format":"opaque","id":"acme"}}`,
			event:     `{"change_type":"revoke","credential_type":"access_token","event_timestamp":1700000000,"initiating_entity":"admin","reason_admin":{"en":"leaked in a log"},"treaty_feed_sequence":42,"treaty_target_id":"j1","treaty_target_kind":"credential"}`,
		},
		{
			name:      "credential without partner, no actor, no reason",
			ev:        ev("", "", &treatyv1.CredentialRevoked{Jti: "j2"}),
			eventType: EventCredentialChange,
			subject:   `{"format":"jwt_id","iss":"https://treaty.example.com","jti":"j2"}`,
			event:     `{"change_type":"revoke","credential_type":"access_token","event_timestamp":1700000000,"initiating_entity":"system","reason_admin":{"en":"revoked in Treaty"},"treaty_feed_sequence":42,"treaty_target_id":"j2","treaty_target_kind":"credential"}`,
		},
		{
			name:      "signing key",
			ev:        ev("alice", "key compromise", &treatyv1.SigningKeyRevoked{Kid: "k1"}),
			eventType: EventCredentialChange,
			subject:   `{"application":{"format":"uri","uri":"https://treaty.example.com"},"credential":{"format":"opaque","id":"k1"},"format":"complex"}`,
			event:     `{"change_type":"revoke","credential_type":"signing_key","event_timestamp":1700000000,"initiating_entity":"admin","reason_admin":{"en":"key compromise"},"treaty_feed_sequence":42,"treaty_target_id":"k1","treaty_target_kind":"signing_key"}`,
		},
		{
			name:      "workload block",
			ev:        ev("alice", "r", &treatyv1.Blocked{TargetKind: treatyv1.TargetKind_TARGET_KIND_WORKLOAD, TargetId: "w1"}),
			eventType: EventSessionRevoked,
			subject:   `{"format":"iss_sub","iss":"https://treaty.example.com","sub":"w1"}`,
			event:     `{"event_timestamp":1700000000,"initiating_entity":"admin","reason_admin":{"en":"r"},"treaty_feed_sequence":42,"treaty_target_id":"w1","treaty_target_kind":"workload"}`,
		},
		{
			name:      "integration block",
			ev:        ev("alice", "r", &treatyv1.Blocked{TargetKind: treatyv1.TargetKind_TARGET_KIND_INTEGRATION, TargetId: "i1"}),
			eventType: EventSessionRevoked,
			subject:   `{"application":{"format":"opaque","id":"i1"},"format":"complex"}`,
			event:     `{"event_timestamp":1700000000,"initiating_entity":"admin","reason_admin":{"en":"r"},"treaty_feed_sequence":42,"treaty_target_id":"i1","treaty_target_kind":"integration"}`,
		},
		{
			name:      "partner offboarded (permanent block by the registry)",
			ev:        ev("", "offboarded", &treatyv1.Blocked{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme", Permanent: true}),
			eventType: EventSessionRevoked,
			subject:   `{"format":"complex","tenant":{"format":"opaque","id":"acme"}}`,
			event:     `{"event_timestamp":1700000000,"initiating_entity":"system","reason_admin":{"en":"offboarded"},"treaty_feed_sequence":42,"treaty_permanent":true,"treaty_target_id":"acme","treaty_target_kind":"partner"}`,
		},
		{
			name:      "break-glass global watermark",
			ev:        ev("alice", "issuer compromise", &treatyv1.GlobalWatermark{BelowSequence: 40}),
			eventType: EventSessionRevoked,
			subject:   `{"format":"complex","tenant":{"format":"uri","uri":"https://treaty.example.com"}}`,
			event:     `{"event_timestamp":1700000000,"initiating_entity":"admin","reason_admin":{"en":"issuer compromise"},"treaty_below_sequence":40,"treaty_feed_sequence":42,"treaty_target_kind":"global"}`,
		},
		{name: "restore", ev: ev("alice", "r", &treatyv1.Restored{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme"}), skip: true},
		{name: "registry change", ev: ev("", "", &treatyv1.PartnerChanged{PartnerId: "acme"}), skip: true},
		{name: "block of an unknown kind", ev: ev("", "", &treatyv1.Blocked{TargetKind: treatyv1.TargetKind_TARGET_KIND_UNSPECIFIED, TargetId: "x"}), skip: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, ok := tr.mapEvent(c.ev)
			if ok == c.skip {
				t.Fatalf("mapped = %v, want %v", ok, !c.skip)
			}
			if c.skip {
				return
			}
			if sig.eventType != c.eventType {
				t.Errorf("event type = %s, want %s", sig.eventType, c.eventType)
			}
			if got := mustJSON(t, sig.subject); got != c.subject {
				t.Errorf("sub_id =\n%s\nwant\n%s", got, c.subject)
			}
			if got := mustJSON(t, sig.event); got != c.event {
				t.Errorf("event =\n%s\nwant\n%s", got, c.event)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestSETJTIIsStableAndDistinct(t *testing.T) {
	a := setJTI("s1", "e1", 0, 7)
	if a != setJTI("s1", "e1", 0, 7) {
		t.Fatal("jti is not stable")
	}
	for _, other := range []string{setJTI("s2", "e1", 0, 7), setJTI("s1", "e2", 0, 7), setJTI("s1", "e1", 1, 7), setJTI("s1", "e1", 0, 8)} {
		if other == a {
			t.Fatal("jtis of different SETs collide")
		}
	}
}
