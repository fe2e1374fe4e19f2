package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Client secrets are for partners that cannot sign client assertions. They are weaker than keys
// (a bearer secret that travels with every token request), so Treaty generates them itself, shows
// each once, keeps only its hash, and makes every one expire.
const (
	// ClientSecretPrefix starts every client secret, so that secret scanners (GitHub's, gitleaks)
	// can recognise a leaked one.
	ClientSecretPrefix = "treaty_cs_"
	// DefaultClientSecretTTL is a client secret's lifetime when the request names none.
	DefaultClientSecretTTL = 30 * 24 * time.Hour
	// MaxClientSecretTTL is the longest lifetime a client secret may have.
	MaxClientSecretTTL = 90 * 24 * time.Hour
	// MaxLiveClientSecrets is how many secrets of one workload may be live at once: the current
	// one and its successor during a rotation.
	MaxLiveClientSecrets = 2
	// clientSecretBytes is the secret's entropy: 256 bits.
	clientSecretBytes = 32
)

// ClientSecret is a client secret's metadata. It never holds the secret or its hash.
type ClientSecret struct {
	// ID names the secret within its workload.
	ID         string
	WorkloadID string
	Created    time.Time
	// Expires is when it stops authenticating (exclusive).
	Expires time.Time
	// Creator is the actor that created it.
	Creator string
	// Revoked is when it was revoked; zero while it is not.
	Revoked time.Time
}

// Live reports whether the secret authenticates at now.
func (s ClientSecret) Live(now time.Time) bool { return s.Revoked.IsZero() && now.Before(s.Expires) }

// ClientSecretVerifier is what the issuer needs to verify a presented secret: its hash and
// expiry, never the secret.
type ClientSecretVerifier struct {
	ID string
	// SHA256 is the SHA-256 hash of the secret string.
	SHA256  [sha256.Size]byte
	Expires time.Time
}

// clientSecretRecord is a secret as stored, under "workload id/secret id".
type clientSecretRecord struct {
	ID         string    `json:"id"`
	WorkloadID string    `json:"workload_id"`
	Hash       string    `json:"sha256"` // hex
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	Creator    string    `json:"creator"`
	Revoked    time.Time `json:"revoked,omitzero"`
}

func (rec *clientSecretRecord) secret() ClientSecret {
	return ClientSecret{ID: rec.ID, WorkloadID: rec.WorkloadID, Created: rec.Created, Expires: rec.Expires,
		Creator: rec.Creator, Revoked: rec.Revoked}
}

func (rec *clientSecretRecord) summary() map[string]string {
	m := map[string]string{"workload_id": rec.WorkloadID, "secret_id": rec.ID, "expires": rec.Expires.Format(time.RFC3339)}
	if !rec.Revoked.IsZero() {
		m["revoked"] = rec.Revoked.Format(time.RFC3339)
	}
	return m
}

// HashClientSecret returns the hash a client secret is stored and verified by. SHA-256 is enough,
// without salt or a slow KDF: the secret is 256 random bits, so neither a dictionary nor brute force
// can invert its hash, and a fast hash keeps the token endpoint fast. (A password would need
// argon2id; a generated secret does not.)
func HashClientSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

func secretKey(workloadID, secretID string) []byte { return []byte(workloadID + "/" + secretID) }

// CreateClientSecret generates a client secret for a workload and returns its metadata with the
// secret itself, the only time it is ever available: only its hash is stored. ttl zero means
// DefaultClientSecretTTL; longer than MaxClientSecretTTL is refused. A workload may hold at most
// MaxLiveClientSecrets live secrets; revoke one (or let it expire) before creating another. The
// reason is optional; the audit record says "client secret created" without one.
func (r *Registry) CreateClientSecret(ctx context.Context, workloadID string, ttl time.Duration, reason, actor string) (ClientSecret, string, error) {
	if err := fail.CheckID("workload_id", workloadID); err != nil {
		return ClientSecret{}, "", err
	}
	switch {
	case ttl < 0:
		return ClientSecret{}, "", fail.Invalidf("ttl", "ttl must not be negative")
	case ttl == 0:
		ttl = DefaultClientSecretTTL
	case ttl < time.Minute:
		return ClientSecret{}, "", fail.Invalidf("ttl", "ttl must be at least a minute")
	case ttl > MaxClientSecretTTL:
		return ClientSecret{}, "", fail.Invalidf("ttl", "ttl must be at most %d days: client secrets must be rotated", int(MaxClientSecretTTL/(24*time.Hour)))
	}
	if err := CheckActor("actor", actor); err != nil {
		return ClientSecret{}, "", err
	}
	reason, err := optionalReason(reason, "client secret created")
	if err != nil {
		return ClientSecret{}, "", err
	}
	raw := make([]byte, clientSecretBytes+6)
	if _, err := rand.Read(raw); err != nil {
		return ClientSecret{}, "", fmt.Errorf("registry: generate client secret: %w", err)
	}
	secret := ClientSecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:clientSecretBytes])
	hash := HashClientSecret(secret)
	now := r.now()
	rec := clientSecretRecord{
		ID: "cs-" + hex.EncodeToString(raw[clientSecretBytes:]), WorkloadID: workloadID, Hash: hex.EncodeToString(hash[:]),
		Created: now, Expires: now.Add(ttl), Creator: actor,
	}
	_, err = r.commit(ctx, func(tx store.Tx) (change, error) {
		var w workloadRecord
		if err := workloads.load(tx, workloadID, &w); err != nil {
			return change{}, err
		}
		if w.State != treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE {
			return change{}, fail.Preconditionf("workload %q is %s; client secrets are only created for active workloads", workloadID, feed.StateName(w.State))
		}
		all, err := loadSecrets(tx, workloadID)
		if err != nil {
			return change{}, err
		}
		live := 0
		for _, s := range all {
			if s.secret().Live(now) {
				live++
			}
			if s.ID == rec.ID {
				return change{}, fmt.Errorf("registry: client secret id %s collides", rec.ID)
			}
		}
		if live >= MaxLiveClientSecrets {
			return change{}, fail.Preconditionf("workload %q already has %d live client secrets; revoke one before creating another", workloadID, live)
		}
		if err := putSecret(tx, secretKey(workloadID, rec.ID), &rec); err != nil {
			return change{}, err
		}
		return change{audit: AuditRecord{Time: now, Actor: actor, Action: "workload.client_secret.create",
			Target: "workload/" + workloadID, Reason: reason, After: rec.summary()}}, nil
	})
	if err != nil {
		return ClientSecret{}, "", err
	}
	return rec.secret(), secret, nil
}

// ListClientSecrets returns a workload's client secrets, live or not, oldest first: metadata only.
func (r *Registry) ListClientSecrets(ctx context.Context, workloadID string) ([]ClientSecret, error) {
	recs, err := r.secrets(workloadID)
	if err != nil {
		return nil, err
	}
	out := make([]ClientSecret, len(recs))
	for i := range recs {
		out[i] = recs[i].secret()
	}
	return out, nil
}

// ClientSecretVerifiers returns the hashes and expiries of a workload's live client secrets, for
// the issuer. The secrets themselves are never stored, so they cannot be returned.
func (r *Registry) ClientSecretVerifiers(ctx context.Context, workloadID string) ([]ClientSecretVerifier, error) {
	recs, err := r.secrets(workloadID)
	if err != nil {
		return nil, err
	}
	now := r.now()
	var out []ClientSecretVerifier
	for _, rec := range recs {
		if !rec.secret().Live(now) {
			continue
		}
		v := ClientSecretVerifier{ID: rec.ID, Expires: rec.Expires}
		if n, err := hex.Decode(v.SHA256[:], []byte(rec.Hash)); err != nil || n != sha256.Size {
			return nil, fmt.Errorf("registry: client secret %s of workload %q has a corrupt hash", rec.ID, workloadID)
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeClientSecret revokes one client secret of a workload at once and returns its metadata.
// Revoking a revoked secret changes nothing. Credentials already issued with it stay valid until
// they expire; revoke those through the revoker if the secret leaked. Revoking a secret is a
// security action: the reason is required.
func (r *Registry) RevokeClientSecret(ctx context.Context, workloadID, secretID, reason, actor string) (ClientSecret, error) {
	if err := fail.CheckID("workload_id", workloadID); err != nil {
		return ClientSecret{}, err
	}
	if err := fail.CheckID("secret_id", secretID); err != nil {
		return ClientSecret{}, err
	}
	if err := CheckReason("reason", reason); err != nil {
		return ClientSecret{}, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return ClientSecret{}, err
	}
	now := r.now()
	var rec clientSecretRecord
	_, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		raw := tx.Get(bucketClientSecrets, secretKey(workloadID, secretID))
		if raw == nil {
			return change{}, fail.NotFoundf("workload %q has no client secret %q", workloadID, secretID)
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return change{}, fmt.Errorf("registry: decode client secret %s: %w", secretID, err)
		}
		if !rec.Revoked.IsZero() {
			return change{skip: true}, nil
		}
		before := rec.summary()
		rec.Revoked = now
		if err := putSecret(tx, secretKey(workloadID, secretID), &rec); err != nil {
			return change{}, err
		}
		return change{audit: AuditRecord{Time: now, Actor: actor, Action: "workload.client_secret.revoke",
			Target: "workload/" + workloadID, Reason: reason, Before: before, After: rec.summary()}}, nil
	})
	if err != nil {
		return ClientSecret{}, err
	}
	return rec.secret(), nil
}

// secrets reads a workload's secret records, oldest first; an unknown workload is NotFound.
func (r *Registry) secrets(workloadID string) ([]clientSecretRecord, error) {
	if err := fail.CheckID("workload_id", workloadID); err != nil {
		return nil, err
	}
	var out []clientSecretRecord
	err := r.cfg.Store.View(func(tx store.Tx) error {
		if !workloads.exists(tx, workloadID) {
			return fail.NotFoundf("workload %q does not exist", workloadID)
		}
		var err error
		out, err = loadSecrets(tx, workloadID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadSecrets reads a workload's secret records inside tx, ordered by creation.
func loadSecrets(tx store.Tx, workloadID string) ([]clientSecretRecord, error) {
	var out []clientSecretRecord
	prefix := []byte(workloadID + "/")
	err := tx.Scan(bucketClientSecrets, prefix, nil, func(k, v []byte) (bool, error) {
		var rec clientSecretRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("registry: decode client secret %s: %w", k, err)
		}
		out = append(out, rec)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	// Ids are random, so key order is not creation order.
	slices.SortStableFunc(out, func(a, b clientSecretRecord) int { return a.Created.Compare(b.Created) })
	return out, nil
}

func putSecret(tx store.Tx, key []byte, rec *clientSecretRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("registry: encode client secret: %w", err)
	}
	return tx.Put(bucketClientSecrets, key, raw)
}
