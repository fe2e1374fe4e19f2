package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// AuditRecord is one entry of the registry's append-only audit trail: who changed what, when and
// why. It is written in the same transaction as the change it describes, and chained to the
// record before it by hash (see auditchain.go), so a changed, moved or deleted record is detected
// by VerifyAudit.
type AuditRecord struct {
	// Sequence is the record's position in the trail, from 1, gap-free.
	Sequence uint64 `json:"sequence"`
	// Time is when the change was committed.
	Time time.Time `json:"time"`
	// Actor is who asked for the change; UnattributedActor when the request named no one.
	Actor string `json:"actor"`
	// Action names the change, for example "partner.create" or "partner.suspend".
	Action string `json:"action"`
	// Target names the entity as "kind/id", for example "partner/acme".
	Target string `json:"target"`
	// Reason is the actor's reason, when the action takes one.
	Reason string `json:"reason,omitempty"`
	// Before summarises the entity's relevant fields before the change; nil for a creation.
	Before map[string]string `json:"before,omitempty"`
	// After summarises them after the change.
	After map[string]string `json:"after,omitempty"`
	// Prev is the hex SHA-256 hash of the record before this one (AuditGenesis for the first).
	Prev string `json:"prev_hash"`
	// Hash is this record's hex SHA-256 hash: of Prev and the record's canonical encoding.
	Hash string `json:"hash"`
}

// AuditBucket is the bucket of a registry store that holds the audit trail, keyed by
// store.Uint64Key(sequence) with AuditRecord JSON values, for tools that read a copy of the
// database file directly (treaty audit verify --db) and feed an AuditChain.
const AuditBucket = bucketAudit

// UnattributedActor is recorded as the actor of a change whose request named none, so that every
// record says who, even if only that nobody was named.
const UnattributedActor = "unattributed"

// appendAudit appends rec to the trail inside tx: it assigns the sequence, chains the record to
// the last one and stores it. Every registry write goes through here (Registry.write), so the
// chain is computed in one place, whatever the change.
func appendAudit(tx store.Tx, rec AuditRecord) error {
	switch {
	case rec.Time.IsZero(), rec.Action == "", rec.Target == "":
		// A programming error: every change says when, what and on which entity.
		return fmt.Errorf("registry: audit record %q on %q at %s is incomplete", rec.Action, rec.Target, rec.Time)
	case rec.Actor == "":
		rec.Actor = UnattributedActor
	}
	seq, prev := uint64(1), auditGenesis
	if k, v := tx.Last(bucketAudit); k != nil {
		var last AuditRecord
		if err := json.Unmarshal(v, &last); err != nil {
			return fmt.Errorf("registry: decode the last audit record %d: %w", store.KeyUint64(k), err)
		}
		if last.Hash == "" {
			return fmt.Errorf("registry: the last audit record %d has no hash; the audit trail was not migrated", store.KeyUint64(k))
		}
		seq, prev = store.KeyUint64(k)+1, last.Hash
	}
	if err := seal(&rec, seq, prev); err != nil {
		return fmt.Errorf("registry: audit record %d: %w", seq, err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("registry: encode audit record %d: %w", seq, err)
	}
	return tx.Put(bucketAudit, store.Uint64Key(seq), raw)
}

// chainAudit is the store migration from layout 1, whose audit records carried no hashes: it
// chains the existing records in order from the genesis value, as if they had been written with
// the chain. Records before the migration were not tamper-evident when written; from the
// migration on they are. A record that does not decode, or a gap, stops the migration (and the
// open) rather than being chained over.
func chainAudit(tx store.Tx) error {
	var recs []AuditRecord
	err := tx.Scan(bucketAudit, nil, nil, func(k, v []byte) (bool, error) {
		var rec AuditRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("decode audit record %d: %w", store.KeyUint64(k), err)
		}
		if want := uint64(len(recs)) + 1; store.KeyUint64(k) != want || rec.Sequence != want {
			return false, fmt.Errorf("audit record %d is stored as %d, want %d: the trail has a gap", rec.Sequence, store.KeyUint64(k), want)
		}
		recs = append(recs, rec)
		return true, nil
	})
	if err != nil {
		return err
	}
	prev := auditGenesis
	for i := range recs { // written after the scan: a bucket must not change under its cursor
		rec := &recs[i]
		if rec.Actor == "" {
			rec.Actor = UnattributedActor
		}
		if err := seal(rec, rec.Sequence, prev); err != nil {
			return fmt.Errorf("audit record %d: %w", rec.Sequence, err)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode audit record %d: %w", rec.Sequence, err)
		}
		if err := tx.Put(bucketAudit, store.Uint64Key(rec.Sequence), raw); err != nil {
			return err
		}
		prev = rec.Hash
	}
	return nil
}

// maxAuditPage bounds one ListAudit answer.
const maxAuditPage = 1000

// ListAudit returns up to limit audit records with a sequence greater than after, in order. A
// limit of 0 means the default page size; larger limits are capped at 1000.
func (r *Registry) ListAudit(ctx context.Context, after uint64, limit int) ([]AuditRecord, error) {
	recs, _, err := r.QueryAudit(ctx, AuditQuery{After: after, Limit: limit})
	return recs, err
}

// AuditQuery selects audit records.
type AuditQuery struct {
	// After skips records up to this sequence (to resume).
	After uint64
	// Limit bounds the records returned: 0 means the default page size (100), larger limits
	// are capped at 1000.
	Limit int
	// Target keeps only the records about one entity ("partner/acme"), if set. The trail is
	// scanned in order, so a rare target costs a scan of the records after After.
	Target string
}

// QueryAudit returns the records q selects, in order, and whether the page is full (more may
// follow after the last record returned).
func (r *Registry) QueryAudit(ctx context.Context, q AuditQuery) (recs []AuditRecord, more bool, err error) {
	if q.Limit < 0 {
		return nil, false, fail.Invalidf("limit", "limit must not be negative")
	}
	if q.Limit == 0 {
		q.Limit = defaultPageSize
	}
	q.Limit = min(q.Limit, maxAuditPage)
	if q.After == math.MaxUint64 {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	err = r.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketAudit, nil, store.Uint64Key(q.After+1), func(k, v []byte) (bool, error) {
			var rec AuditRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode audit record %d: %w", store.KeyUint64(k), err)
			}
			if q.Target == "" || rec.Target == q.Target {
				recs = append(recs, rec)
			}
			return len(recs) < q.Limit, nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("registry: list audit: %w", err)
	}
	return recs, len(recs) == q.Limit, nil
}

// verifyPage is how many records VerifyAudit checks per read transaction, so that a long trail
// does not hold one read transaction open (and the file from growing) for the whole walk.
const verifyPage = 1000

// VerifyAudit walks the whole audit trail from the genesis value and reports the first broken
// record, or the count and head when the chain is intact (see AuditChain). A zero anchor checks
// none. The error is only for failing to read the store; a broken chain is a result.
func (r *Registry) VerifyAudit(ctx context.Context, anchor AuditAnchor) (AuditVerification, error) {
	return VerifyAuditStore(ctx, r.cfg.Store, anchor)
}

// VerifyAuditStore is VerifyAudit over any store opened with Schema, such as a copy of a
// registry's database.
func VerifyAuditStore(ctx context.Context, st store.Store, anchor AuditAnchor) (AuditVerification, error) {
	chain := NewAuditChain(anchor)
	var start []byte
	for {
		if err := ctx.Err(); err != nil {
			return AuditVerification{}, err
		}
		n, ok := 0, true
		err := st.View(func(tx store.Tx) error {
			return tx.Scan(bucketAudit, nil, start, func(k, v []byte) (bool, error) {
				n++
				start = nextKey(k)
				ok = chain.Add(k, v)
				return ok && n < verifyPage, nil
			})
		})
		if err != nil {
			return AuditVerification{}, fmt.Errorf("registry: verify audit: %w", err)
		}
		if !ok || n < verifyPage {
			return chain.Result(), nil
		}
	}
}

// nextKey returns the smallest key after k.
func nextKey(k []byte) []byte { return append(append([]byte(nil), k...), 0) }
