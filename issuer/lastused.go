package issuer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// MaxWorkloadUsageQuery bounds the workload ids of one WorkloadsLastUsed call: a registry page of
// workloads at most, with room to spare.
const MaxWorkloadUsageQuery = 1000

// bucketWorkloadLastUsed keeps, per workload, the latest last-seen time of any of its credentials
// (workload id -> unix nanos). ReportUsage moves it forward in the transaction that moves a
// credential's last-seen time, so it survives the credential records' expiry and is one read per
// workload; without it "when did this workload last act" would be a scan of its credentials.
const bucketWorkloadLastUsed = "workloads_last_used"

// WorkloadsLastUsed returns, for each of ids that a decision point has ever reported using a
// credential of, the last time one did. Workloads with no usage on record are absent from the map.
func (i *Issuer) WorkloadsLastUsed(ids []string) (map[string]time.Time, error) {
	if len(ids) > MaxWorkloadUsageQuery {
		return nil, fail.Invalidf("workload_ids", "workload_ids: at most %d per call, not %d", MaxWorkloadUsageQuery, len(ids))
	}
	for _, id := range ids {
		if err := fail.CheckID("workload_ids", id); err != nil {
			return nil, err
		}
	}
	out := make(map[string]time.Time, len(ids))
	err := i.cfg.Store.View(func(tx store.Tx) error {
		for _, id := range ids {
			if t := workloadLastUsed(tx, id); !t.IsZero() {
				out[id] = t
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: read workloads' last use: %w", err)
	}
	return out, nil
}

// workloadLastUsed returns the last-used time recorded for a workload, or the zero time.
func workloadLastUsed(tx store.Tx, workloadID string) time.Time {
	raw := tx.Get(bucketWorkloadLastUsed, []byte(workloadID))
	if raw == nil {
		return time.Time{}
	}
	return time.Unix(0, int64(store.KeyUint64(raw)))
}

// lastUsedMarks gathers, over one usage report, the latest time seen per workload, so that each
// workload's mark is read and written once per report however many of its credentials it names.
type lastUsedMarks map[string]int64

// note records that a credential, whose record is raw, was seen at seen (unix nanos).
func (m lastUsedMarks) note(raw []byte, seen int64) error {
	w, err := recordWorkload(raw)
	if err != nil {
		return err
	}
	if seen > m[w] {
		m[w] = seen
	}
	return nil
}

// recordWorkload returns the workload id of a stored credential record. It reads the record's
// JSON only up to its "workload" member (the second, after "jti"): decoding whole records
// doubled the cost of a full usage report, a write transaction that issuances queue behind.
func recordWorkload(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", fmt.Errorf("decode credential record: not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("decode credential record: %w", err)
		}
		if key != "workload" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", fmt.Errorf("decode credential record: %w", err)
			}
			continue
		}
		var w string
		if err := dec.Decode(&w); err != nil {
			return "", fmt.Errorf("decode credential record's workload: %w", err)
		}
		return w, nil
	}
	return "", nil // a record without a workload marks none
}

// save moves each workload's mark forward in tx, never back.
func (m lastUsedMarks) save(tx store.Tx) error {
	for w, seen := range m {
		if w == "" || seen <= workloadLastUsed(tx, w).UnixNano() {
			continue
		}
		if err := tx.Put(bucketWorkloadLastUsed, []byte(w), store.Uint64Key(uint64(seen))); err != nil {
			return err
		}
	}
	return nil
}

// markWorkloadsLastUsed is the migration to layout 3: it sets every workload's last-used mark
// from the last-seen times already recorded for its credentials.
func markWorkloadsLastUsed(tx store.Tx) error {
	marks := lastUsedMarks{}
	err := tx.Scan(bucketLastSeen, nil, nil, func(jti, v []byte) (bool, error) {
		raw := tx.Get(bucketCreds, jti)
		if raw == nil {
			return true, nil
		}
		if err := marks.note(raw, int64(store.KeyUint64(v))); err != nil {
			return false, fmt.Errorf("credential %q: %w", jti, err)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return marks.save(tx)
}
