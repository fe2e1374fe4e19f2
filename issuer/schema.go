package issuer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store"
)

// The issuer's buckets. Index keys put the id they are scoped to first, then a NUL (which no Treaty
// id contains, so one id is never a prefix match of another), then the inverted issuance counter,
// so a prefix scan lists one partner's or workload's credentials newest first.
const (
	bucketState      = "issuer"                     // fixed keys: the active and next kids, the KEK id, the inventory counter
	bucketKeys       = "keys"                       // kid -> keyRecord
	bucketCreds      = "credentials"                // jti -> credentialRecord
	bucketByOrder    = "credentials_by_order"       // ^n -> jti
	bucketByPartner  = "credentials_by_partner"     // partner NUL ^n -> jti
	bucketByWorkload = "credentials_by_workload"    // workload NUL ^n -> jti
	bucketByInteg    = "credentials_by_integration" // integration NUL ^n -> jti (layout 2)
	bucketLastSeen   = "credentials_last_seen"      // jti -> unix nanos, as PDPs report it
	bucketRevoked    = "credentials_revoked"        // jti -> feed sequence of its revocation (revoked.go)
	bucketReplay     = "replay"                     // workload NUL jti -> expiry (unix nanos)
	bucketReplayExp  = "replay_expiry"              // expiry, time recorded (unix nanos; layout 4), workload NUL jti -> empty
	// bucketWorkloadLastUsed (lastused.go): workload id -> unix nanos, the latest last seen of its credentials.
)

var (
	keyActive  = []byte("active_kid")
	keyCounter = []byte("credential_counter")
)

// Schema is the layout of the issuer's store. Private signing keys are kept in it as PKCS#8
// encrypted with the key-encryption key (see Config.KEKFile); the bbolt file is created with mode
// 0600.
//
// Layout 2 added the integration index of the inventory (built from the records at open) and
// the last-seen times PDPs report. The revoked marks (bucketRevoked) need no migration: the issuer
// fills them from the feed's snapshot whenever it starts following the feed.
//
// Layout 3 added the workloads' last-used marks, set at open from the last-seen times on record.
//
// Layout 4 keys the replay cache's expiry index by the time an entry was recorded after its
// expiry, so that its inserts are local (see putReplay); index entries already on record are
// rewritten as recorded at time zero. The entries themselves (key -> expiry) are unchanged, so a
// replica not yet upgraded that shares an etcd store still refuses every jti recorded by an
// upgraded one, and the other way round.
var Schema = store.Schema{
	Name:    "issuer",
	Version: 4,
	Buckets: []string{
		bucketState, bucketKeys, bucketCreds, bucketByOrder, bucketByPartner, bucketByWorkload,
		bucketByInteg, bucketLastSeen, bucketReplay, bucketReplayExp, outbox.Bucket, bucketRevoked,
		bucketWorkloadLastUsed,
	},
	Migrations: map[uint64]func(store.Tx) error{1: indexIntegrations, 2: markWorkloadsLastUsed, 3: stampReplayEntries},
}

// stampReplayEntries rewrites the replay cache's expiry index of layout 3 (expiry, key -> empty)
// into layout 4's (expiry, time recorded, key -> empty), with zero as the time recorded.
func stampReplayEntries(tx store.Tx) error {
	var keys [][]byte
	err := tx.Scan(bucketReplayExp, nil, nil, func(k, _ []byte) (bool, error) {
		if len(k) < 8 {
			return false, fmt.Errorf("replay expiry entry %x is shorter than 8 bytes", k)
		}
		keys = append(keys, bytes.Clone(k))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(bucketReplayExp, k); err != nil {
			return err
		}
		index := append(append(bytes.Clone(k[:8]), make([]byte, 8)...), k[8:]...)
		if err := tx.Put(bucketReplayExp, index, nil); err != nil {
			return err
		}
	}
	return nil
}

// indexIntegrations builds the integration index from the inventory's records.
func indexIntegrations(tx store.Tx) error {
	type entry struct{ key, jti []byte }
	var entries []entry
	err := tx.Scan(bucketCreds, nil, nil, func(k, v []byte) (bool, error) {
		var rec credentialRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("decode credential %q: %w", k, err)
		}
		entries = append(entries, entry{scoped(rec.IntegrationID, orderKey(rec.Order)), bytes.Clone(k)})
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := tx.Put(bucketByInteg, e.key, e.jti); err != nil {
			return err
		}
	}
	return nil
}

// keyRecord is a signing key as stored.
type keyRecord struct {
	Kid       string          `json:"kid"`
	Algorithm string          `json:"alg"`
	PublicJWK json.RawMessage `json:"public_jwk"`
	// Private is the PKCS#8 private key in plaintext: only in stores written before keys were
	// encrypted (migrated into Sealed at open), or by an issuer given no key-encryption key.
	Private []byte `json:"private,omitempty"`
	// Sealed is the PKCS#8 private key encrypted with the key-encryption key. Private and Sealed
	// are both dropped once the key is retired or revoked, as it signs nothing more.
	Sealed    *sealedKey `json:"sealed,omitempty"`
	Created   time.Time  `json:"created"`
	Revoked   bool       `json:"revoked,omitempty"`
	Published uint64     `json:"published_sequence,omitempty"`
	// Issuer is the issuer identifier the key was published for; tokens it signs carry it as iss.
	Issuer string `json:"issuer,omitempty"`
	// Activated is when the key started signing; zero for a key that never did.
	Activated time.Time `json:"activated,omitempty"`
	// Retired is when the key stopped signing, and PublishedUntil when the last token it signed
	// has expired, so that it leaves the JWKS.
	Retired        time.Time `json:"retired,omitempty"`
	PublishedUntil time.Time `json:"published_until,omitempty"`
}

// credentialRecord is an inventory record as stored.
type credentialRecord struct {
	ID            string    `json:"jti"`
	WorkloadID    string    `json:"workload"`
	IntegrationID string    `json:"integration"`
	PartnerID     string    `json:"partner"`
	Scopes        []string  `json:"scopes"`
	Audience      string    `json:"aud"`
	IssueTime     time.Time `json:"iat"`
	ExpireTime    time.Time `json:"exp"`
	Kid           string    `json:"kid"`
	Sequence      uint64    `json:"tsq"`
	// Binding and AuthMethod are empty in records written before they were recorded.
	Binding    string `json:"binding,omitempty"`
	AuthMethod string `json:"auth_method,omitempty"`
	// ParentID is the jti of the token this one was exchanged from, if any.
	ParentID string `json:"parent,omitempty"`
	// BindingThumbprint is cnf.jkt or cnf.x5t#S256.
	BindingThumbprint string `json:"binding_thumbprint,omitempty"`
	// Order is the inventory counter the record is indexed under.
	Order uint64 `json:"order"`

	// revoked is the sequence of its revocation, kept apart in bucketRevoked (so marking a
	// revocation rewrites no record); readers fill it in.
	revoked uint64
}

func newCredentialRecord(c Credential, order uint64) credentialRecord {
	return credentialRecord{
		ID: c.ID, WorkloadID: c.WorkloadID, IntegrationID: c.IntegrationID, PartnerID: c.PartnerID,
		Scopes: c.Scopes, Audience: c.Audience, IssueTime: c.IssueTime, ExpireTime: c.ExpireTime,
		Kid: c.Kid, Sequence: c.Sequence, AuthMethod: c.AuthMethod, Binding: c.Binding,
		BindingThumbprint: c.BindingThumbprint, ParentID: c.ParentID, Order: order,
	}
}

func (r *credentialRecord) credential() Credential {
	return Credential{
		ID: r.ID, WorkloadID: r.WorkloadID, IntegrationID: r.IntegrationID, PartnerID: r.PartnerID,
		Scopes: r.Scopes, Audience: r.Audience, IssueTime: r.IssueTime, ExpireTime: r.ExpireTime,
		Kid: r.Kid, Sequence: r.Sequence, Binding: r.Binding, AuthMethod: r.AuthMethod, ParentID: r.ParentID,
		BindingThumbprint: r.BindingThumbprint, RevokedSequence: r.revoked,
	}
}

func getJSON(tx store.Tx, bucket string, key []byte, v any) (bool, error) {
	raw := tx.Get(bucket, key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %s/%q: %w", bucket, key, err)
	}
	return true, nil
}

func putJSON(tx store.Tx, bucket string, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%q: %w", bucket, key, err)
	}
	return tx.Put(bucket, key, raw)
}

// scoped builds an index key: id NUL rest.
func scoped(id string, rest []byte) []byte {
	k := make([]byte, 0, len(id)+1+len(rest))
	k = append(k, id...)
	k = append(k, 0)
	return append(k, rest...)
}

// orderKey inverts the inventory counter so that ascending scans return the newest first.
func orderKey(n uint64) []byte { return store.Uint64Key(^n) }
