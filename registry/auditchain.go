package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/treaty-dev/treaty/store"
)

// The audit trail is a hash chain. Each record carries the hash of the record before it (Prev)
// and its own hash (Hash), both lowercase hex:
//
//	hash(n) = SHA-256( raw(hash(n-1)) || canonical(record n) )
//
// where hash(0), the genesis value the first record chains from, is 32 zero bytes, and the
// canonical encoding (version 1) is length-prefixed, so no two records encode alike:
//
//	canonical = "treaty.audit.v1" 0x00
//	            u64(sequence)
//	            i64(time: Unix seconds) u32(time: nanoseconds within the second)
//	            str(actor) str(action) str(target) str(reason)
//	            map(before) map(after)
//	str(s)    = u32(byte length of s) s
//	map(m)    = u32(number of entries) then, for each key in byte order, str(key) str(value)
//
// with every integer big-endian, and an absent map encoded like an empty one (JSON omits both).
// The sequence is inside the hash, so moving a record is detected as well as changing one; the
// previous hash is inside it too, so deleting a record breaks the link of the next one. The
// encoding is computed from the record as stored (decoded from its JSON), so any tool that reads
// the JSON lines of `treaty audit export` can recompute every hash.
//
// A hash chain without a secret key proves integrity relative to an anchor: someone able to write
// the database file could rewrite the whole chain, or cut its tail. Exporting records (or noting
// the head hash) outside the database is that anchor; VerifyAudit checks one given as AuditAnchor.

// auditGenesis is the hash the first record chains from.
var auditGenesis = hex.EncodeToString(make([]byte, sha256.Size))

// AuditGenesis returns the hex hash the first audit record chains from (32 zero bytes).
func AuditGenesis() string { return auditGenesis }

// auditDomain starts every canonical encoding: it names the format and its version.
const auditDomain = "treaty.audit.v1\x00"

// canonical returns the record's canonical encoding (see the comment above). Prev and Hash are
// not part of it: the previous hash is chained in by chainHash, and Hash is the result.
func (rec *AuditRecord) canonical() []byte {
	b := make([]byte, 0, 256)
	b = append(b, auditDomain...)
	b = binary.BigEndian.AppendUint64(b, rec.Sequence)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.Time.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(rec.Time.Nanosecond()))
	for _, s := range []string{rec.Actor, rec.Action, rec.Target, rec.Reason} {
		b = appendStr(b, s)
	}
	for _, m := range []map[string]string{rec.Before, rec.After} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendStr(appendStr(b, k), m[k])
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// chainHash returns the hex hash of rec chained after prev (a hex hash). It fails only if prev
// is not a hex SHA-256 hash.
func chainHash(prev string, rec *AuditRecord) (string, error) {
	raw, err := hex.DecodeString(prev)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("previous hash %q is not a hex SHA-256 hash", prev)
	}
	h := sha256.New()
	h.Write(raw)
	h.Write(rec.canonical())
	return hex.EncodeToString(h.Sum(nil)), nil
}

// seal sets rec's sequence and previous hash and computes its hash. The record is first passed
// through its stored form (JSON), so that the hash covers exactly what a reader decodes: JSON
// replaces invalid UTF-8, for one, and drops a time's monotonic reading and zone.
func seal(rec *AuditRecord, seq uint64, prev string) error {
	rec.Sequence, rec.Prev, rec.Hash = seq, prev, ""
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	var stored AuditRecord
	if err := json.Unmarshal(raw, &stored); err != nil {
		return fmt.Errorf("decode audit record: %w", err)
	}
	if stored.Hash, err = chainHash(prev, &stored); err != nil {
		return err
	}
	*rec = stored
	return nil
}

// AuditProblem names what is wrong with the first broken record of an audit trail.
type AuditProblem string

// The problems VerifyAudit reports.
const (
	// AuditUndecodable: the stored bytes are not an audit record.
	AuditUndecodable AuditProblem = "undecodable"
	// AuditSequenceMismatch: the record's sequence differs from the key it is stored under (it
	// was moved).
	AuditSequenceMismatch AuditProblem = "sequence_mismatch"
	// AuditGap: records are missing before this one (deleted).
	AuditGap AuditProblem = "gap"
	// AuditPrevMismatch: the record's previous hash is not the hash of the record before it.
	AuditPrevMismatch AuditProblem = "prev_mismatch"
	// AuditHashMismatch: the record's content does not match its hash (it was changed).
	AuditHashMismatch AuditProblem = "hash_mismatch"
	// AuditAnchorMismatch: the record at the anchor's sequence does not have the anchor's hash
	// (the chain was rewritten from there or before).
	AuditAnchorMismatch AuditProblem = "anchor_mismatch"
	// AuditTruncated: the chain ends before the anchor's sequence (its tail was cut).
	AuditTruncated AuditProblem = "truncated"
)

// AuditBreak describes the first broken record of an audit trail.
type AuditBreak struct {
	// Sequence is the broken record's sequence: its key, or for AuditTruncated the anchor's.
	Sequence uint64 `json:"sequence"`
	// Problem is what is wrong.
	Problem AuditProblem `json:"problem"`
	// Detail says it in words, with the values that disagree.
	Detail string `json:"detail"`
}

// Error implements error, so a break can be returned or wrapped as one.
func (b *AuditBreak) Error() string {
	return fmt.Sprintf("audit record %d: %s: %s", b.Sequence, b.Problem, b.Detail)
}

// AuditAnchor is a record known from outside the database (a SIEM, a report, an earlier
// verification's head): VerifyAudit checks that the chain still holds it, which detects a cut
// tail or a chain rewritten from scratch, neither of which the chain alone can show.
type AuditAnchor struct {
	// Sequence is the anchored record's sequence; 0 means no anchor.
	Sequence uint64 `json:"sequence"`
	// Hash is its hex hash.
	Hash string `json:"hash"`
}

// AuditVerification is the outcome of walking an audit trail.
type AuditVerification struct {
	// Records counts the intact records walked, from the first; on a break, those before it.
	Records uint64 `json:"records"`
	// HeadSequence and HeadHash are the last intact record's (0 and the genesis hash when there
	// is none).
	HeadSequence uint64 `json:"head_sequence"`
	HeadHash     string `json:"head_hash"`
	// Broken is the first broken record, or nil when the chain is intact.
	Broken *AuditBreak `json:"broken,omitempty"`
}

// Intact reports whether no broken record was found.
func (v AuditVerification) Intact() bool { return v.Broken == nil }

// AuditChain walks an audit trail one stored record at a time, in key order, and stops at the
// first broken one. It reads raw keys and values, so it can check a database file opened by any
// means (see AuditBucket); VerifyAudit uses it over a Registry's store.
type AuditChain struct {
	anchor AuditAnchor
	result AuditVerification
	next   uint64 // the sequence the next record must have
}

// NewAuditChain starts a walk from the genesis value. A zero anchor checks no anchor.
func NewAuditChain(anchor AuditAnchor) *AuditChain {
	return &AuditChain{anchor: anchor, next: 1, result: AuditVerification{HeadHash: auditGenesis}}
}

// Add checks the next stored record (its key and value in the audit bucket). It returns false
// once the chain is broken; later records are not looked at.
func (c *AuditChain) Add(key, value []byte) bool {
	if c.result.Broken != nil {
		return false
	}
	if b := c.check(key, value); b != nil {
		c.result.Broken = b
		return false
	}
	return true
}

func (c *AuditChain) check(key, value []byte) *AuditBreak {
	if len(key) != 8 {
		return &AuditBreak{Sequence: c.next, Problem: AuditUndecodable,
			Detail: fmt.Sprintf("key %x after record %d is not a sequence", key, c.next-1)}
	}
	seq := store.KeyUint64(key)
	var rec AuditRecord
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields() // a field the hash does not cover must not pass unnoticed
	if err := dec.Decode(&rec); err != nil {
		return &AuditBreak{Sequence: seq, Problem: AuditUndecodable, Detail: err.Error()}
	}
	if dec.More() {
		return &AuditBreak{Sequence: seq, Problem: AuditUndecodable, Detail: "bytes follow the record"}
	}
	switch {
	case rec.Sequence != seq:
		return &AuditBreak{Sequence: seq, Problem: AuditSequenceMismatch,
			Detail: fmt.Sprintf("stored under sequence %d but says %d", seq, rec.Sequence)}
	case seq != c.next:
		return &AuditBreak{Sequence: seq, Problem: AuditGap, Detail: missing(c.next, seq)}
	case rec.Prev == "" && rec.Hash == "":
		return &AuditBreak{Sequence: seq, Problem: AuditPrevMismatch, Detail: "the record carries no hashes: it was written " +
			"before the chain (layout 1, which a server chains when it opens the file) or its hashes were removed"}
	case rec.Prev != c.result.HeadHash:
		return &AuditBreak{Sequence: seq, Problem: AuditPrevMismatch,
			Detail: fmt.Sprintf("prev_hash is %q, the hash of record %d is %s", rec.Prev, seq-1, c.result.HeadHash)}
	}
	want, err := chainHash(rec.Prev, &rec)
	if err != nil {
		return &AuditBreak{Sequence: seq, Problem: AuditPrevMismatch, Detail: err.Error()}
	}
	if rec.Hash != want {
		return &AuditBreak{Sequence: seq, Problem: AuditHashMismatch,
			Detail: fmt.Sprintf("hash is %q, the content hashes to %s", rec.Hash, want)}
	}
	if c.anchor.Sequence == seq && c.anchor.Hash != rec.Hash {
		return &AuditBreak{Sequence: seq, Problem: AuditAnchorMismatch,
			Detail: fmt.Sprintf("hash is %s, the anchor says %s", rec.Hash, c.anchor.Hash)}
	}
	c.result.Records++
	c.result.HeadSequence, c.result.HeadHash = seq, rec.Hash
	c.next = seq + 1
	return nil
}

func missing(from, to uint64) string {
	if to == from+1 {
		return fmt.Sprintf("record %d is missing", from)
	}
	return fmt.Sprintf("records %d to %d are missing", from, to-1)
}

// Result ends the walk: the verification, with AuditTruncated if the chain ended intact before
// the anchor.
func (c *AuditChain) Result() AuditVerification {
	r := c.result
	if r.Broken == nil && c.anchor.Sequence > r.HeadSequence {
		r.Broken = &AuditBreak{Sequence: c.anchor.Sequence, Problem: AuditTruncated,
			Detail: fmt.Sprintf("the chain ends at record %d, before the anchor", r.HeadSequence)}
	}
	return r
}
