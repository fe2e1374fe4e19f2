package issuer

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// MaxUsageReport bounds the entries of one ReportUsage call.
const MaxUsageReport = 10_000

// Usage is when a decision point last allowed a request with a credential.
type Usage struct {
	// CredentialID is the credential's jti.
	CredentialID string
	// LastSeen is the last time a PDP allowed a request with it.
	LastSeen time.Time
}

// ReportUsage records when credentials were last seen, as PDPs report it in batches, in one
// durable transaction, and returns how many credentials' last-seen time moved forward. A time
// earlier than the one on record, and an id the inventory does not hold, are ignored; a time in
// the future (a PDP's clock ahead of the issuer's) is recorded as now. The same transaction moves
// the last-used mark of each credential's workload forward (see WorkloadsLastUsed).
func (i *Issuer) ReportUsage(usages []Usage) (int, error) {
	if len(usages) > MaxUsageReport {
		return 0, fail.Invalidf("usages", "usages: at most %d entries per report", MaxUsageReport)
	}
	now := i.cfg.Now()
	var updated int
	err := i.cfg.Store.Update(func(tx store.Tx) error {
		updated = 0
		marks := lastUsedMarks{}
		for _, u := range usages {
			jti := []byte(u.CredentialID)
			seen := min(u.LastSeen.UnixNano(), now.UnixNano())
			raw := tx.Get(bucketCreds, jti)
			if raw == nil || seen <= lastSeen(tx, jti).UnixNano() {
				continue
			}
			if err := tx.Put(bucketLastSeen, jti, store.Uint64Key(uint64(seen))); err != nil {
				return err
			}
			if err := marks.note(raw, seen); err != nil {
				return fmt.Errorf("credential %s: %w", u.CredentialID, err)
			}
			updated++
		}
		return marks.save(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("issuer: record credential usage: %w", err)
	}
	return updated, nil
}

// lastSeen returns the last-seen time recorded for jti, or the zero time.
func lastSeen(tx store.Tx, jti []byte) time.Time {
	raw := tx.Get(bucketLastSeen, jti)
	if raw == nil {
		return time.Time{}
	}
	return time.Unix(0, int64(store.KeyUint64(raw)))
}

// PartnerCount is one partner's number of live credentials.
type PartnerCount struct {
	PartnerID string
	Live      uint64
}

// CountLiveByPartner counts the live credentials of every partner that has any, by partner id.
// Like CountLive it reads only the credentials issued within the maximum credential lifetime
// (plus a margin), newest first.
func (i *Issuer) CountLiveByPartner() ([]PartnerCount, error) {
	counts, _, err := i.livePerPartner(0)
	if err != nil {
		return nil, err
	}
	out := make([]PartnerCount, 0, len(counts))
	for p, n := range counts {
		out = append(out, PartnerCount{PartnerID: p, Live: n})
	}
	slices.SortFunc(out, func(a, b PartnerCount) int { return cmp.Compare(a.PartnerID, b.PartnerID) })
	return out, nil
}

// MaxLivePerPartnerExamined bounds the credentials one LivePerPartner reads.
const MaxLivePerPartnerExamined = 1_000_000

// LivePerPartner is CountLiveByPartner for monitoring: a map, and at most
// MaxLivePerPartnerExamined credentials read; truncated reports that it stopped there, the counts
// then being lower bounds. Its cost grows with the issuance rate, so callers that poll it (a
// metrics scrape) should reuse an answer for a while.
func (i *Issuer) LivePerPartner() (live map[string]uint64, truncated bool, err error) {
	return i.livePerPartner(MaxLivePerPartnerExamined)
}

// livePerPartner counts the live credentials (unexpired, and not revoked as far as the issuer has
// applied the feed) of each partner that has one, reading at most limit credentials (0: no
// limit) issued within the maximum credential lifetime (plus a margin), newest first.
func (i *Issuer) livePerPartner(limit int) (live map[string]uint64, truncated bool, err error) {
	now := i.cfg.Now()
	cutoff := now.Add(-i.cfg.MaxCredentialTTL - liveMargin)
	live = map[string]uint64{}
	err = i.cfg.Store.View(func(tx store.Tx) error {
		examined := 0
		return tx.Scan(bucketByOrder, nil, nil, func(_, jti []byte) (bool, error) {
			if examined++; limit > 0 && examined > limit {
				truncated = true
				return false, nil
			}
			rec, err := indexedRecord(tx, jti)
			if err != nil {
				return false, err
			}
			if rec.IssueTime.Before(cutoff) {
				return false, nil // everything older has expired
			}
			if rec.ExpireTime.After(now) && revokedSequence(tx, jti) == 0 {
				live[rec.PartnerID]++
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("issuer: count live credentials by partner: %w", err)
	}
	return live, truncated, nil
}
