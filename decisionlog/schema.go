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
	// bySubjectBucket indexes entries with a subject: subject | 0x00 | time (8) | sequence (8),
	// empty value. Subjects are Treaty ids, which never hold a NUL.
	bySubjectBucket = "decisions_by_subject"
)

// Schema is the layout of the decision log's own store (one bbolt file, apart from the PDP's).
var Schema = store.Schema{Name: "decisionlog", Version: 1, Buckets: []string{recordsBucket, byTimeBucket, bySubjectBucket}}

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

func subjectPrefix(subject string) []byte { return append([]byte(subject), 0) }

func timeIndexKey(p position) []byte { return p.appendTo(make([]byte, 0, 16)) }

func subjectIndexKey(subject string, p position) []byte {
	return p.appendTo(append(make([]byte, 0, len(subject)+17), subjectPrefix(subject)...))
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
		return tx.Put(bySubjectBucket, enc.key(func(b []byte) []byte { return p.appendTo(append(append(b, e.Subject...), 0)) }), nil)
	}
	return nil
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
		return tx.Delete(bySubjectBucket, subjectIndexKey(e.Subject, p))
	}
	return nil
}
