package issuer

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

// Page sizes of ListCredentials.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// maxExamined bounds the index entries one page reads, so a filter that matches little cannot
	// make one call scan the whole inventory; the page then comes back short, with a token.
	maxExamined = 10000
)

// Filter selects credentials from the inventory. Zero fields select everything; every field set
// must match.
type Filter struct {
	PartnerID     string
	IntegrationID string
	WorkloadID    string
	// LiveOnly keeps only live credentials: not expired, and not revoked as far as the issuer has
	// applied the feed.
	LiveOnly bool
	// ExpiredOnly keeps only credentials that have expired; not with LiveOnly.
	ExpiredOnly bool
}

// idEncoding is base64 with the URL-safe characters in ASCII order, so that encoded ids sort as
// their bytes do.
var idEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

// newCredentialID returns a credential id (jti): the issue time in milliseconds (48 bits), then
// 80 random bits, in 22 URL-safe characters that sort by time. Ids that grow with time make the
// inventory's inserts appends at the end of its key space: a batch of issuances dirties one leaf
// page instead of one random page each, which is most of a commit's writes once the inventory is
// large. 80 random bits keep ids unique (the token is signed; its jti needs no secrecy).
func newCredentialID(now time.Time) (string, error) {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for k := range 6 {
		b[k] = byte(ms >> (40 - 8*k))
	}
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// bindingThumbprint is what the inventory keeps of a token's confirmation: the DPoP key's
// thumbprint if there is one (a dpop+mtls token carries both), else the certificate's.
func bindingThumbprint(cnf *token.Confirmation) string {
	switch {
	case cnf == nil:
		return ""
	case cnf.JKT != "":
		return cnf.JKT
	}
	return cnf.X5TS256
}

// record writes a credential and its index entries, and the replay claim of the assertion that
// authenticated its request (nil if none), in one durable transaction shared with concurrent
// issuances (store.Batch). It returns errReplayed if another request used the assertion first.
func (i *Issuer) record(claim *replayClaim, c Credential) error {
	now := i.cfg.Now()
	err := i.cfg.Store.Batch(func(tx store.Tx) error {
		if claim != nil {
			if err := claim.take(tx, now); err != nil {
				return err
			}
		}
		return putCredential(tx, c)
	})
	switch {
	case err == errReplayed:
		return err
	case err != nil:
		return fmt.Errorf("issuer: record credential in the inventory: %w", err)
	}
	return nil
}

// putCredential writes a credential and its index entries in tx. It only reads and writes tx, so
// it may run again when its batch is retried.
func putCredential(tx store.Tx, c Credential) error {
	if tx.Get(bucketCreds, []byte(c.ID)) != nil {
		return fmt.Errorf("credential id %s exists already", c.ID)
	}
	n := store.KeyUint64(tx.Get(bucketState, keyCounter)) + 1
	if err := tx.Put(bucketState, keyCounter, store.Uint64Key(n)); err != nil {
		return err
	}
	rec := newCredentialRecord(c, n)
	if err := putJSON(tx, bucketCreds, []byte(c.ID), &rec); err != nil {
		return err
	}
	jti, order := []byte(c.ID), orderKey(n)
	for _, e := range [...]struct {
		bucket string
		key    []byte
	}{
		{bucketByOrder, order},
		{bucketByPartner, scoped(c.PartnerID, order)},
		{bucketByWorkload, scoped(c.WorkloadID, order)},
		{bucketByInteg, scoped(c.IntegrationID, order)},
	} {
		if err := tx.Put(e.bucket, e.key, jti); err != nil {
			return err
		}
	}
	return nil
}

// Credential returns the inventory record of the credential with the given jti.
func (i *Issuer) Credential(jti string) (Credential, error) {
	var rec credentialRecord
	var ok bool
	var seen time.Time
	err := i.cfg.Store.View(func(tx store.Tx) error {
		var err error
		ok, err = getJSON(tx, bucketCreds, []byte(jti), &rec)
		seen = lastSeen(tx, []byte(jti))
		rec.revoked = revokedSequence(tx, []byte(jti))
		return err
	})
	if err != nil {
		return Credential{}, fmt.Errorf("issuer: read credential: %w", err)
	}
	if !ok {
		return Credential{}, fail.NotFoundf("credential %q is not in the inventory", jti)
	}
	c := rec.credential()
	c.LastSeen = seen
	return c, nil
}

// ListCredentials pages through the inventory, newest first (in issuance order). pageSize zero
// means DefaultPageSize; larger than MaxPageSize means MaxPageSize. The returned token, empty on
// the last page, continues the listing with the same filter.
func (i *Issuer) ListCredentials(f Filter, pageSize int, pageToken string) ([]Credential, string, error) {
	switch {
	case pageSize < 0:
		return nil, "", fail.Invalidf("page_size", "page_size must not be negative")
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	if f.LiveOnly && f.ExpiredOnly {
		return nil, "", fail.Invalidf("expired_only", "live_only and expired_only exclude each other")
	}
	var start []byte
	if pageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(raw) != 8 {
			return nil, "", fail.Invalidf("page_token", "page_token is not a token this listing returned")
		}
		start = raw
	}
	bucket, prefix := bucketByOrder, []byte(nil)
	switch {
	case f.WorkloadID != "":
		bucket, prefix = bucketByWorkload, scoped(f.WorkloadID, nil)
	case f.IntegrationID != "":
		bucket, prefix = bucketByInteg, scoped(f.IntegrationID, nil)
	case f.PartnerID != "":
		bucket, prefix = bucketByPartner, scoped(f.PartnerID, nil)
	}
	if start != nil {
		start = append(append([]byte(nil), prefix...), start...)
	}
	now := i.cfg.Now()
	var (
		out  []Credential
		next string
	)
	err := i.cfg.Store.View(func(tx store.Tx) error {
		examined := 0
		return tx.Scan(bucket, prefix, start, func(k, jti []byte) (bool, error) {
			if examined++; examined > maxExamined {
				next = base64.RawURLEncoding.EncodeToString(k[len(prefix):])
				return false, nil
			}
			rec, err := indexedRecord(tx, jti)
			if err != nil {
				return false, err
			}
			rec.revoked = revokedSequence(tx, jti)
			expired := !rec.ExpireTime.After(now)
			live := !expired && rec.revoked == 0
			if (f.PartnerID != "" && rec.PartnerID != f.PartnerID) || (f.IntegrationID != "" && rec.IntegrationID != f.IntegrationID) ||
				(f.LiveOnly && !live) || (f.ExpiredOnly && !expired) {
				return true, nil
			}
			if len(out) == pageSize {
				next = base64.RawURLEncoding.EncodeToString(k[len(prefix):])
				return false, nil
			}
			c := rec.credential()
			c.LastSeen = lastSeen(tx, jti)
			out = append(out, c)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("issuer: list credentials: %w", err)
	}
	return out, next, nil
}

// MaxLiveIDs bounds the ids CountLive returns.
const MaxLiveIDs = 100

// liveMargin widens the window CountLive scans beyond the maximum credential lifetime, for clocks
// that stepped between issuances.
const liveMargin = 5 * time.Minute

// LiveQuery selects live (unexpired and not revoked) credentials, for a revocation's dry run. Every field that is
// set must match; at least one of the ids or BelowSequence must be set.
type LiveQuery struct {
	PartnerID, IntegrationID, WorkloadID string
	// CredentialID is a jti.
	CredentialID string
	// Kid is the signing key.
	Kid string
	// BelowSequence, if non-zero, keeps credentials with a tsq below it (a break-glass revocation).
	BelowSequence uint64
	// MinSequence, if non-zero, keeps credentials with a tsq at or after it (a restore's watermark:
	// older ones are dead already).
	MinSequence uint64
	// MaxIDs is how many ids to return; zero or more than MaxLiveIDs means MaxLiveIDs.
	MaxIDs int
	// WorkloadIDs, if not empty, keeps credentials of one of these workloads.
	WorkloadIDs []string
}

// liveQuery is a LiveQuery with its workload set.
type liveQuery struct {
	LiveQuery
	workloads map[string]bool // nil: any workload
}

func (q liveQuery) matches(rec *credentialRecord, now time.Time) bool {
	switch {
	case !rec.ExpireTime.After(now),
		rec.revoked != 0,
		q.PartnerID != "" && rec.PartnerID != q.PartnerID,
		q.IntegrationID != "" && rec.IntegrationID != q.IntegrationID,
		q.WorkloadID != "" && rec.WorkloadID != q.WorkloadID,
		q.CredentialID != "" && rec.ID != q.CredentialID,
		q.Kid != "" && rec.Kid != q.Kid,
		q.BelowSequence != 0 && rec.Sequence >= q.BelowSequence,
		q.MinSequence != 0 && rec.Sequence < q.MinSequence,
		q.workloads != nil && !q.workloads[rec.WorkloadID]:
		return false
	}
	return true
}

// CountLive counts the live credentials q selects (unexpired, and not revoked as far as the issuer
// has applied the feed: see WaitApplied) and returns up to q.MaxIDs of their ids,
// soonest-expiring last.
//
// It never reads the whole inventory: a credential issued longer ago than the maximum credential
// lifetime (plus a margin) has expired, so a newest-first scan of the narrowest index (the
// workload's, the partner's, or issuance order) stops there. Credentials minted under a longer
// maximum lifetime than the one configured now are not counted.
func (i *Issuer) CountLive(q LiveQuery) (uint64, []string, error) {
	switch {
	case q.MaxIDs < 0:
		return 0, nil, fail.Invalidf("max_ids", "max_ids must not be negative")
	case q.MaxIDs == 0 || q.MaxIDs > MaxLiveIDs:
		q.MaxIDs = MaxLiveIDs
	}
	if q.PartnerID == "" && q.IntegrationID == "" && q.WorkloadID == "" && len(q.WorkloadIDs) == 0 && q.CredentialID == "" &&
		q.Kid == "" && q.BelowSequence == 0 {
		return 0, nil, fail.Invalidf("partner_id", "name what to count: a partner, integration, workload, credential or key, or a sequence bound")
	}
	lq := liveQuery{LiveQuery: q}
	if len(q.WorkloadIDs) > 0 {
		lq.workloads = make(map[string]bool, len(q.WorkloadIDs))
		for _, id := range q.WorkloadIDs {
			lq.workloads[id] = true
		}
	}
	now := i.cfg.Now()
	cutoff := now.Add(-i.cfg.MaxCredentialTTL - liveMargin)
	type live struct {
		id      string
		expires time.Time
	}
	var (
		count uint64
		found []live
	)
	visit := func(rec *credentialRecord) {
		if !lq.matches(rec, now) {
			return
		}
		count++
		if len(found) < q.MaxIDs {
			found = append(found, live{rec.ID, rec.ExpireTime})
		}
	}
	err := i.cfg.Store.View(func(tx store.Tx) error {
		if q.CredentialID != "" {
			var rec credentialRecord
			ok, err := getJSON(tx, bucketCreds, []byte(q.CredentialID), &rec)
			rec.revoked = revokedSequence(tx, []byte(q.CredentialID))
			if ok {
				visit(&rec)
			}
			return err
		}
		bucket, prefix := bucketByOrder, []byte(nil)
		switch {
		case q.WorkloadID != "":
			bucket, prefix = bucketByWorkload, scoped(q.WorkloadID, nil)
		case len(q.WorkloadIDs) == 1:
			bucket, prefix = bucketByWorkload, scoped(q.WorkloadIDs[0], nil)
		case q.PartnerID != "":
			bucket, prefix = bucketByPartner, scoped(q.PartnerID, nil)
		}
		return tx.Scan(bucket, prefix, nil, func(_, jti []byte) (bool, error) {
			rec, err := indexedRecord(tx, jti)
			if err != nil {
				return false, err
			}
			if rec.IssueTime.Before(cutoff) {
				return false, nil // everything older has expired
			}
			rec.revoked = revokedSequence(tx, jti)
			visit(rec)
			return true, nil
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("issuer: count live credentials: %w", err)
	}
	slices.SortStableFunc(found, func(a, b live) int { return b.expires.Compare(a.expires) })
	ids := make([]string, len(found))
	for k, f := range found {
		ids[k] = f.id
	}
	return count, ids, nil
}

// indexedRecord reads the credential an index entry names; a missing one is a broken index.
func indexedRecord(tx store.Tx, jti []byte) (*credentialRecord, error) {
	var rec credentialRecord
	ok, err := getJSON(tx, bucketCreds, jti, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("index entry for %q has no record", jti)
	}
	return &rec, nil
}
