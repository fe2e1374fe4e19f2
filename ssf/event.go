package ssf

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Subject is a subject identifier (RFC 9493) or an SSF complex subject: a JSON object with a
// "format" member.
type Subject map[string]any

// Claims is a SET's claim set (RFC 8417 section 2.2, profiled by SSF 1.0 section 4.1). There is
// no sub and no exp: SSF forbids both.
type Claims struct {
	Iss    string                    `json:"iss"`
	Jti    string                    `json:"jti"`
	Iat    int64                     `json:"iat"`
	Aud    string                    `json:"aud"`
	Txn    string                    `json:"txn,omitempty"`
	SubID  Subject                   `json:"sub_id"`
	Events map[string]map[string]any `json:"events"`
}

// signal is what one feed event becomes, before it is addressed to a stream.
type signal struct {
	eventType string
	subject   Subject
	event     map[string]any
}

// Credential types for credential-change. CAEP lists human credential types and admits others
// agreed between transmitter and receiver; these two are Treaty's.
const (
	CredentialTypeAccessToken = "access_token" // a Treaty access token (RFC 9068 JWT), by jti
	CredentialTypeSigningKey  = "signing_key"  // one of the issuer's token signing keys, by kid
)

// Members of Treaty's own that ride in every event object, so a Treaty-aware receiver needs no
// subject parsing; other receivers ignore them (SSF 1.0 section 4.2.3).
const (
	memberTargetKind   = "treaty_target_kind"
	memberTargetID     = "treaty_target_id"
	memberFeedSequence = "treaty_feed_sequence"
)

// mapEvent turns a feed event into the signal receivers see, or reports false for events that
// do not concern receivers (grants, policies, key publication, restores: a restore does not
// revive any credential, so there is nothing for a receiver to act on).
func (t *Transmitter) mapEvent(ev *treatyv1.Event) (signal, bool) {
	base := func(kind, id string) map[string]any {
		reason := ev.GetReason()
		if reason == "" {
			reason = "revoked in Treaty"
		}
		initiator := "system"
		if ev.GetActor() != "" {
			initiator = "admin"
		}
		e := map[string]any{
			"initiating_entity": initiator,
			"reason_admin":      map[string]string{"en": reason},
			"event_timestamp":   ev.GetTime().GetSeconds(),
			memberTargetKind:    kind,
			memberFeedSequence:  ev.GetSequence(),
		}
		if id != "" {
			e[memberTargetID] = id
		}
		return e
	}
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		jti := c.CredentialRevoked.GetJti()
		e := base("credential", jti)
		e["change_type"] = "revoke"
		e["credential_type"] = CredentialTypeAccessToken
		token := Subject{"format": "jwt_id", "iss": t.cfg.TokenIssuer, "jti": jti}
		sub := token
		if p := c.CredentialRevoked.GetPartnerId(); p != "" {
			sub = Subject{"format": "complex", "session": token, "tenant": opaque(p)}
		}
		return signal{eventType: EventCredentialChange, subject: sub, event: e}, true
	case *treatyv1.Event_SigningKeyRevoked:
		kid := c.SigningKeyRevoked.GetKid()
		e := base("signing_key", kid)
		e["change_type"] = "revoke"
		e["credential_type"] = CredentialTypeSigningKey
		sub := Subject{"format": "complex", "application": Subject{"format": "uri", "uri": t.cfg.TokenIssuer}, "credential": opaque(kid)}
		return signal{eventType: EventCredentialChange, subject: sub, event: e}, true
	case *treatyv1.Event_Blocked:
		id := c.Blocked.GetTargetId()
		var sub Subject
		var kind string
		switch c.Blocked.GetTargetKind() {
		case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
			// A workload is the sub of its access tokens at the token issuer.
			kind, sub = "workload", Subject{"format": "iss_sub", "iss": t.cfg.TokenIssuer, "sub": id}
		case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
			kind, sub = "integration", Subject{"format": "complex", "application": opaque(id)}
		case treatyv1.TargetKind_TARGET_KIND_PARTNER:
			kind, sub = "partner", Subject{"format": "complex", "tenant": opaque(id)}
		default:
			return signal{}, false
		}
		e := base(kind, id)
		if c.Blocked.GetPermanent() {
			e["treaty_permanent"] = true
		}
		return signal{eventType: EventSessionRevoked, subject: sub, event: e}, true
	case *treatyv1.Event_GlobalWatermark:
		// Break-glass: every session of every workload whose credential was issued below the
		// sequence. The subject is the whole token issuer, as a tenant.
		e := base("global", "")
		e["treaty_below_sequence"] = c.GlobalWatermark.GetBelowSequence()
		sub := Subject{"format": "complex", "tenant": Subject{"format": "uri", "uri": t.cfg.TokenIssuer}}
		return signal{eventType: EventSessionRevoked, subject: sub, event: e}, true
	}
	return signal{}, false
}

func opaque(id string) Subject { return Subject{"format": "opaque", "id": id} }

// setJTI derives a SET's jti from what makes it unique: the stream, the feed's epoch, the
// transmitter's resync generation and the event's sequence. A redelivered SET keeps its jti.
func setJTI(streamID, epoch string, gen, seq uint64) string {
	h := sha256.New()
	h.Write([]byte("treaty-ssf-set\x00" + streamID + "\x00" + epoch + "\x00"))
	h.Write([]byte(strconv.FormatUint(gen, 10) + "\x00" + strconv.FormatUint(seq, 10)))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// verificationJTI derives a verification SET's jti from the stream and its queue position.
func verificationJTI(streamID string, pos uint64) string {
	h := sha256.Sum256([]byte("treaty-ssf-verify\x00" + streamID + "\x00" + strconv.FormatUint(pos, 10)))
	return hex.EncodeToString(h[:16])
}

// txn names the feed event a SET comes from; it is the same on every stream (SSF 1.0 section
// 4.1.9).
func txn(epoch string, seq uint64) string { return epoch + ":" + strconv.FormatUint(seq, 10) }
