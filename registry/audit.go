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
// why. It is written in the same transaction as the change it describes.
type AuditRecord struct {
	// Sequence is the record's position in the trail, from 1, gap-free.
	Sequence uint64 `json:"sequence"`
	// Time is when the change was committed.
	Time time.Time `json:"time"`
	// Actor is who asked for the change.
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
}

// appendAudit appends rec to the trail inside tx, assigning its sequence.
func appendAudit(tx store.Tx, rec AuditRecord) error {
	rec.Sequence = 1
	if k, _ := tx.Last(bucketAudit); k != nil {
		rec.Sequence = store.KeyUint64(k) + 1
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	return tx.Put(bucketAudit, store.Uint64Key(rec.Sequence), raw)
}

// maxAuditPage bounds one ListAudit answer.
const maxAuditPage = 1000

// ListAudit returns up to limit audit records with a sequence greater than after, in order. A
// limit of 0 means the default page size; larger limits are capped at 1000.
func (r *Registry) ListAudit(ctx context.Context, after uint64, limit int) ([]AuditRecord, error) {
	if limit < 0 {
		return nil, fail.Invalidf("limit", "limit must not be negative")
	}
	if limit == 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxAuditPage)
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []AuditRecord
	err := r.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketAudit, nil, store.Uint64Key(after+1), func(k, v []byte) (bool, error) {
			var rec AuditRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode audit record %d: %w", store.KeyUint64(k), err)
			}
			out = append(out, rec)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list audit: %w", err)
	}
	return out, nil
}
