package notify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

// Notification types: the "type" of a payload, for receivers to route on.
const (
	// TypeContractExpiring: a partner's contract ends within the warning window.
	TypeContractExpiring = "contract.expiring"
	// TypeBlocked: a partner, or one of its integrations or workloads, was blocked (kill switch,
	// suspension, offboarding or contract end).
	TypeBlocked = "killswitch.blocked"
	// TypeRestored: a block was lifted.
	TypeRestored = "killswitch.restored"
	// TypeCredentialsRevoked: credentials of the partner were revoked (coalesced per partner).
	TypeCredentialsRevoked = "killswitch.credentials_revoked"
	// TypeRevokeAll: break-glass, every credential issued below a feed sequence was revoked.
	TypeRevokeAll = "killswitch.revoke_all"
	// TypeKeyRevoked: an issuer signing key was revoked, and every credential it signed with it.
	TypeKeyRevoked = "killswitch.signing_key_revoked"
	// TypeOffboarding*: a step of a partner's offboarding, from the audit trail.
	TypeOffboardingStarted    = "offboarding.started"
	TypeOffboardingRevoked    = "offboarding.revoked"
	TypeOffboardingConfirmed  = "offboarding.confirmed"
	TypeOffboardingTerminated = "offboarding.terminated"
	TypeContractEnded         = "offboarding.contract_ended"
	// TypeFinding: a new posture finding of high or critical severity.
	TypeFinding = "finding.new"
	// TypeTest: a test notification an operator asked for.
	TypeTest = "test"
)

// Notification is the JSON body every endpoint receives.
type Notification struct {
	// ID identifies the notification; it is the same for every endpoint and every retry.
	ID string `json:"id"`
	// Type says what happened (the Type constants).
	Type string `json:"type"`
	// Time is when the notification was raised, in UTC.
	Time time.Time `json:"time"`
	// Partner is the partner it concerns; nil for a deployment-wide event (revoke all, test).
	Partner *Partner `json:"partner,omitempty"`
	// Recipients are the people responsible for the partner, for the receiver to route to.
	Recipients *Recipients `json:"recipients,omitempty"`
	// Summary is one readable sentence.
	Summary string `json:"summary"`
	// Details are type-specific facts (target, feed sequence, reason, counts, finding id...).
	Details map[string]string `json:"details,omitempty"`
}

// Partner names the partner a notification concerns, as the registry records it when the
// notification is raised.
type Partner struct {
	ID                 string    `json:"id"`
	DisplayName        string    `json:"display_name,omitempty"`
	LegalName          string    `json:"legal_name,omitempty"`
	RelationshipType   string    `json:"relationship_type,omitempty"`
	State              string    `json:"state,omitempty"`
	RiskTier           string    `json:"risk_tier,omitempty"`
	DataClassification string    `json:"data_classification,omitempty"`
	ContractID         string    `json:"contract_id,omitempty"`
	ContractEnd        time.Time `json:"contract_end,omitzero"`
	BreachNoticeHours  int32     `json:"breach_notice_hours,omitempty"`
}

// Recipients are the partner's people as the registry records them: the receiver routes the
// notification to them (a team channel, e-mail, a ticket queue).
type Recipients struct {
	OwnerTeam        string `json:"owner_team,omitempty"`
	AccountableOwner string `json:"accountable_owner,omitempty"`
	BackupOwner      string `json:"backup_owner,omitempty"`
	SecurityContact  string `json:"security_contact,omitempty"`
}

// Event is a notification to raise: what Enqueue takes.
type Event struct {
	// Type is one of the Type constants (or a receiver-agreed type of the caller's own).
	Type string
	// PartnerID, if set, names the partner; its display name and recipients are filled in from
	// the registry.
	PartnerID string
	// Summary is one readable sentence. Required.
	Summary string
	// Details are type-specific facts. Never put secrets here.
	Details map[string]string
	// DedupeKey, if set, makes the event raise one notification only, however often it is
	// enqueued (within DedupeFor).
	DedupeKey string
	// DedupeFor, if set, limits the deduplication: the key raises a notification again once
	// DedupeFor has passed since the last one. Zero deduplicates for ever.
	DedupeFor time.Duration
}

// Enqueue raises a notification: it fills in the partner and its recipients from the registry,
// then writes the notification and one delivery per endpoint in one fsync'd transaction. With
// a DedupeKey seen before it returns the earlier notification's id and false.
func (n *Notifier) Enqueue(ctx context.Context, ev Event) (id string, added bool, err error) {
	if ev.Type == "" || ev.Summary == "" {
		return "", false, fail.Invalidf("type", "a notification needs a type and a summary")
	}
	body, err := n.build(ctx, ev)
	if err != nil {
		return "", false, err
	}
	err = n.st.Update(func(tx store.Tx) error {
		id, added, err = n.enqueueTx(tx, body, ev.DedupeKey, ev.DedupeFor)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("notify: enqueue %s: %w", ev.Type, err)
	}
	if added {
		n.wake()
	}
	return id, added, nil
}

// build turns an event into its notification, looking up the partner. A partner the registry
// does not know is named by id alone.
func (n *Notifier) build(ctx context.Context, ev Event) (Notification, error) {
	out := Notification{
		ID: "ntf_" + randomHex(12), Type: ev.Type, Time: n.now(), Summary: ev.Summary, Details: ev.Details,
	}
	if ev.PartnerID == "" {
		return out, nil
	}
	out.Partner = &Partner{ID: ev.PartnerID}
	p, err := n.cfg.Directory.GetPartner(ctx, ev.PartnerID)
	switch {
	case fail.KindOf(err) == fail.NotFound:
		return out, nil
	case err != nil:
		return Notification{}, fmt.Errorf("notify: look up partner %q: %w", ev.PartnerID, err)
	}
	out.Partner, out.Recipients = partnerOf(p), recipientsOf(p)
	return out, nil
}

func partnerOf(p registry.Partner) *Partner {
	out := &Partner{
		ID: p.ID, DisplayName: p.DisplayName, LegalName: p.LegalName, State: feed.StateName(p.State),
		RiskTier: registry.TierName(p.RiskTier), ContractID: p.ContractID, ContractEnd: p.ContractEnd.UTC(),
		BreachNoticeHours: p.BreachNoticeHours,
	}
	if p.RelationshipType != 0 {
		out.RelationshipType = registry.RelationshipName(p.RelationshipType)
	}
	if p.DataClassification != 0 {
		out.DataClassification = registry.ClassificationName(p.DataClassification)
	}
	return out
}

func recipientsOf(p registry.Partner) *Recipients {
	return &Recipients{
		OwnerTeam: p.OwnerTeam, AccountableOwner: p.AccountableOwner, BackupOwner: p.BackupOwner, SecurityContact: p.SecurityContact,
	}
}

// notificationRecord is a notification as stored: its body is fixed at enqueue, so every
// attempt sends the same bytes.
type notificationRecord struct {
	Sequence  uint64          `json:"sequence"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	PartnerID string          `json:"partner_id,omitempty"`
	Created   time.Time       `json:"created"`
	Body      json.RawMessage `json:"body"`
}

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateDead      = "dead"
)

// deliveryRecord is one notification's delivery to one endpoint.
type deliveryRecord struct {
	ID             string    `json:"id"`
	NotificationID string    `json:"notification_id"`
	Sequence       uint64    `json:"sequence"` // the notification's
	Type           string    `json:"type"`
	PartnerID      string    `json:"partner_id,omitempty"`
	Endpoint       string    `json:"endpoint"` // the full URL; shown only redacted
	State          string    `json:"state"`
	Attempts       []Attempt `json:"attempts,omitempty"`
	// Round is how many attempts earlier rounds made (RetryDead starts a new round).
	Round       int       `json:"round,omitempty"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Attempt is one try at a delivery, as the delivery log keeps it.
type Attempt struct {
	// Time is when the attempt started.
	Time time.Time `json:"time"`
	// StatusCode is the receiver's HTTP status, or 0 if none came back.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why the attempt failed; empty for a success.
	Error string `json:"error,omitempty"`
	// Duration is how long the attempt took.
	Duration time.Duration `json:"duration"`
}

// enqueueTx stores a notification and its deliveries inside tx. A dedupe key seen before (less
// than ttl ago, unless ttl is zero) adds nothing and returns the earlier notification's id.
func (n *Notifier) enqueueTx(tx store.Tx, body Notification, dedupe string, ttl time.Duration) (string, bool, error) {
	if dedupe != "" {
		// The value is the earlier notification's sequence and when it was raised.
		if v := tx.Get(bucketDedupe, []byte(dedupe)); len(v) == 16 {
			at := time.Unix(0, int64(store.KeyUint64(v[8:])))
			if ttl == 0 || body.Time.Before(at.Add(ttl)) {
				var earlier notificationRecord
				if raw := tx.Get(bucketNotifications, v[:8]); raw != nil && json.Unmarshal(raw, &earlier) == nil {
					return earlier.ID, false, nil
				}
				return "", false, nil // pruned since; still a duplicate
			}
		}
	}
	seq := uint64(1)
	if v := tx.Get(bucketMeta, keyNextSeq); v != nil {
		seq = store.KeyUint64(v)
	}
	if err := tx.Put(bucketMeta, keyNextSeq, store.Uint64Key(seq+1)); err != nil {
		return "", false, err
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return "", false, fmt.Errorf("encode notification: %w", err)
	}
	partnerID := ""
	if body.Partner != nil {
		partnerID = body.Partner.ID
	}
	rec := notificationRecord{Sequence: seq, ID: body.ID, Type: body.Type, PartnerID: partnerID, Created: body.Time, Body: raw}
	if err := putJSON(tx, bucketNotifications, store.Uint64Key(seq), rec); err != nil {
		return "", false, err
	}
	if dedupe != "" {
		v := binary.BigEndian.AppendUint64(store.Uint64Key(seq), uint64(body.Time.UnixNano()))
		if err := tx.Put(bucketDedupe, []byte(dedupe), v); err != nil {
			return "", false, err
		}
	}
	now := time.Now().UTC().Round(0)
	for _, ep := range n.endpoints {
		d := deliveryRecord{
			ID: "dlv_" + randomHex(12), NotificationID: body.ID, Sequence: seq, Type: body.Type, PartnerID: partnerID,
			Endpoint: ep.url, State: StatePending, Created: now, NextAttempt: now,
		}
		key := deliveryKey(seq, ep.key)
		if err := putJSON(tx, bucketDeliveries, key, d); err != nil {
			return "", false, err
		}
		if err := tx.Put(bucketDue, dueKey(ep.key, now, seq), key); err != nil {
			return "", false, err
		}
	}
	return body.ID, true, nil
}

// deliveryKey is the inverted notification sequence (newest first) and the endpoint key.
func deliveryKey(seq uint64, ep [8]byte) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, ^seq)
	copy(k[8:], ep[:])
	return k
}

// dueKey is endpoint key + next attempt + notification sequence, so that deliveries due at the
// same instant go oldest first. Its value is the delivery key.
func dueKey(ep [8]byte, at time.Time, seq uint64) []byte {
	k := make([]byte, 0, 24)
	k = append(k, ep[:]...)
	k = binary.BigEndian.AppendUint64(k, uint64(max(at.UnixNano(), 0)))
	return binary.BigEndian.AppendUint64(k, seq)
}

func putJSON(tx store.Tx, bucket string, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", bucket, err)
	}
	return tx.Put(bucket, key, raw)
}

func getJSON(tx store.Tx, bucket string, key []byte, v any) (bool, error) {
	raw := tx.Get(bucket, key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %s record: %w", bucket, err)
	}
	return true, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("notify: the system's random source failed")) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
