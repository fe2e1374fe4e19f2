package decisionlog

import (
	"encoding/binary"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// The buckets of the decision log's store.
const (
	// recordsBucket maps a log sequence (store.Uint64Key) to the encoded entry.
	recordsBucket = "decisions"
	// byTimeBucket indexes every entry by time: time (8 bytes) | sequence (8 bytes), empty value.
	byTimeBucket = "decisions_by_time"
	// bySubjectBucket indexes entries with a subject, by a hash of the subject: partition (1
	// byte) | time (8) | sequence (8), and the subject's hash (8 bytes) as the value. See
	// subjectHash for why.
	bySubjectBucket = "decisions_by_subject"
	// stateBucket holds the log's own bookkeeping: reindexKey while a migrated subject index is
	// being rebuilt.
	stateBucket = "decisions_state"
)

// Schema is the layout of the decision log's own store (one bbolt file, apart from the PDP's).
//
// Layout 2 replaced layout 1's subject index (subject | 0 | time | sequence), whose inserts
// landed all over its B-tree (each commit rewrote about one page per entry), with one keyed by
// a hash partition first, so that inserts append at the ends of at most subjectPartitions key
// ranges. The migration empties the old index in the store's upgrade transaction and marks the
// records to index (reindexKey); Open then rebuilds the index from the records in chunks of
// reindexChunk entries, so a log of a million entries never needs one huge transaction, and a
// crash part-way resumes where the last chunk ended.
var Schema = store.Schema{
	Name: "decisionlog", Version: 2,
	Buckets:    []string{recordsBucket, byTimeBucket, bySubjectBucket, stateBucket},
	Migrations: map[uint64]func(store.Tx) error{1: dropSubjectIndex},
	// Both only grow at their ends, and retention deletes from their starts. The subject index
	// grows at the ends of its partitions, in the middle of its tree, where bbolt's default
	// half-full split leaves the next page room for the next commits; packing it measured no
	// better (BenchmarkWriter/paced-300k, 11.8 against 9.6 us an entry).
	Appended: []string{recordsBucket, byTimeBucket},
}

// subjectPartitions is how many key ranges the subject index appends to. A commit of n entries
// rewrites about min(n, subjectPartitions) of the index's leaf pages (plus the records' and the
// time index's few), while a query by subject reads the keys of every subject in its partition
// (1/subjectPartitions of the log in its time range), reading records only for its own.
// Measured with BenchmarkWriter/paced-300k (20,000 entries a second, 300,000 kept, 30,000
// subjects; one run each): 16 partitions cost 11.9 us of CPU an entry, 64 cost 22.5 (a commit of
// ~200 entries then rewrites a page for nearly every partition). A query for a subject absent
// from a log of a million entries steps over its partition's 62,500 keys: 1.2 ms measured,
// against 0.14 ms for a page of 100 entries without a subject.
const subjectPartitions = 16

// subjectHash is FNV-1a (64 bits) of the subject: stable across processes and versions (it is
// stored), spread well enough over short ids, and computed without allocating. Its low bits
// choose the partition; the whole hash is stored as the index value, so a query skips other
// subjects' keys without reading their records, and reads a record only on a match (comparing
// the subject itself, so a collision never shows one subject's entries to another).
func subjectHash(subject string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(subject); i++ {
		h ^= uint64(subject[i])
		h *= 1099511628211
	}
	return h
}

func partitionOf(hash uint64) byte { return byte(hash % subjectPartitions) }

// position orders entries in the indexes: by time, then by log sequence.
type position struct {
	time uint64 // Unix nanoseconds, clamped at 0
	seq  uint64
}

func positionOf(e *Entry) position { return position{time: timeKey(e.Time), seq: e.Seq} }

// timeKey turns a time into index order; times before 1970 sort first.
func timeKey(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

func (p position) appendTo(b []byte) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, p.time), p.seq)
}

// positionFrom reads the position at the end of an index key.
func positionFrom(key []byte) position {
	n := len(key)
	return position{time: binary.BigEndian.Uint64(key[n-16 : n-8]), seq: binary.BigEndian.Uint64(key[n-8:])}
}

func timeIndexKey(p position) []byte { return p.appendTo(make([]byte, 0, 16)) }

// appendSubjectKey appends the subject index key of an entry at p whose subject hashes to hash.
func appendSubjectKey(b []byte, hash uint64, p position) []byte {
	return p.appendTo(append(b, partitionOf(hash)))
}

// put writes one entry and its index keys, encoding them into enc's buffer.
func put(tx store.Tx, e *Entry, enc *encoder) error {
	raw, err := enc.value(e)
	if err != nil {
		return err
	}
	if err := tx.Put(recordsBucket, enc.key(func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, e.Seq) }), raw); err != nil {
		return err
	}
	p := positionOf(e)
	if err := tx.Put(byTimeBucket, enc.key(p.appendTo), nil); err != nil {
		return err
	}
	if e.Subject != "" {
		return putSubject(tx, e.Subject, p, enc)
	}
	return nil
}

func putSubject(tx store.Tx, subject string, p position, enc *encoder) error {
	h := subjectHash(subject)
	key := enc.key(func(b []byte) []byte { return appendSubjectKey(b, h, p) })
	return tx.Put(bySubjectBucket, key, enc.key(func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, h) }))
}

// remove deletes one entry and its index keys.
func remove(tx store.Tx, e *Entry) error {
	p := positionOf(e)
	if err := tx.Delete(recordsBucket, store.Uint64Key(e.Seq)); err != nil {
		return err
	}
	if err := tx.Delete(byTimeBucket, timeIndexKey(p)); err != nil {
		return err
	}
	if e.Subject != "" {
		return tx.Delete(bySubjectBucket, appendSubjectKey(make([]byte, 0, 17), subjectHash(e.Subject), p))
	}
	return nil
}
