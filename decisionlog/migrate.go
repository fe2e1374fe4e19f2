package decisionlog

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/treaty-dev/treaty/store"
)

// reindexKey, in stateBucket, marks a subject index still to rebuild from the records: the next
// sequence to index (8 bytes) and the last (8 bytes), the log's last when it was migrated. The
// writer indexes every entry after that itself.
var reindexKey = []byte("reindex_subjects")

// reindexChunk bounds the entries one rebuild transaction indexes (a var for tests).
var reindexChunk = 20_000

// dropSubjectIndex is the migration from layout 1: it empties layout 1's subject index (bbolt
// frees its pages without rewriting them, so this stays cheap for a large log) and marks every
// record for Open to index in layout 2.
func dropSubjectIndex(tx store.Tx) error {
	if err := tx.Clear(bySubjectBucket); err != nil {
		return err
	}
	last, _ := tx.Last(recordsBucket)
	if last == nil {
		return nil
	}
	return tx.Put(stateBucket, reindexKey, binary.BigEndian.AppendUint64(store.Uint64Key(0), store.KeyUint64(last)))
}

// reindex rebuilds the subject index marked by reindexKey, one chunk per transaction, before
// the log takes any query: a List by subject on a half-built index would miss entries. It
// resumes where a previous run stopped.
func reindex(s store.Store, log *slog.Logger) error {
	var marked bool
	if err := s.View(func(tx store.Tx) error {
		marked = tx.Get(stateBucket, reindexKey) != nil
		return nil
	}); err != nil || !marked {
		return err
	}
	started, indexed := time.Now(), 0
	var enc encoder
	for {
		done := false
		err := s.Update(func(tx store.Tx) error {
			mark := tx.Get(stateBucket, reindexKey)
			if len(mark) != 16 {
				done = true
				return nil
			}
			next, last := binary.BigEndian.Uint64(mark), binary.BigEndian.Uint64(mark[8:])
			type item struct {
				subject string
				p       position
			}
			var items []item
			err := tx.Scan(recordsBucket, nil, store.Uint64Key(next), func(k, v []byte) (bool, error) {
				seq := store.KeyUint64(k)
				if seq > last || len(items) == reindexChunk {
					return false, nil
				}
				e, err := decode(v)
				if err != nil {
					return false, fmt.Errorf("entry %d: %w", seq, err)
				}
				items = append(items, item{e.Subject, positionOf(&e)})
				next = seq + 1
				return true, nil
			})
			if err != nil {
				return err
			}
			enc.reset()
			for _, it := range items {
				if it.subject == "" {
					continue
				}
				if err := putSubject(tx, it.subject, it.p, &enc); err != nil {
					return err
				}
			}
			indexed += len(items)
			if len(items) < reindexChunk || next > last {
				done = true
				return tx.Delete(stateBucket, reindexKey)
			}
			return tx.Put(stateBucket, reindexKey, binary.BigEndian.AppendUint64(store.Uint64Key(next), last))
		})
		if err != nil {
			return fmt.Errorf("rebuild the subject index: %w", err)
		}
		if done {
			break
		}
	}
	if indexed > 0 {
		log.Info("rebuilt the subject index of a decision log of layout 1", "entries", indexed, "took", time.Since(started))
	}
	return nil
}
