package outbox

import (
	"testing"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// results returns the recorded sequences by entry id.
func results(t *testing.T, st store.Store) map[uint64]uint64 {
	t.Helper()
	out := map[uint64]uint64{}
	err := st.View(func(tx store.Tx) error {
		return tx.Scan(Bucket, []byte("r/"), nil, func(k, v []byte) (bool, error) {
			out[store.KeyUint64(k[2:])] = store.KeyUint64(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func span(from, to uint64) []uint64 {
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}

// TestDequeue: a dequeue removes only the entries it was given that are still queued, records
// their sequences once (a relay whose batch overlaps one dequeued already changes nothing of it),
// and keeps only the last keepResults results.
func TestDequeue(t *testing.T) {
	st := storetest.OpenBolt(t, store.Schema{Name: "outboxtest", Version: 1, Buckets: []string{Bucket}})
	const queued = keepResults + 100
	err := st.Update(func(tx store.Tx) error {
		for range queued {
			if _, err := Add(tx, "test", &treatyv1.Event{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	update := func(ids []uint64, seqOffset uint64) {
		t.Helper()
		seqs := make([]uint64, len(ids))
		for i, id := range ids {
			seqs[i] = id + seqOffset
		}
		if err := st.Update(func(tx store.Tx) error { return dequeue(tx, ids, seqs) }); err != nil {
			t.Fatal(err)
		}
	}

	update(span(1, 10), 1000)
	update(span(5, 20), 2000) // overlaps: 5..10 are gone and keep their results
	r := NewRelay(st, nil, nil)
	if n, _ := r.Pending(); n != queued-20 {
		t.Fatalf("pending = %d, want %d", n, queued-20)
	}
	got := results(t, st)
	for id := uint64(1); id <= 20; id++ {
		want := id + 1000
		if id > 10 {
			want = id + 2000
		}
		if got[id] != want {
			t.Fatalf("result of %d = %d, want %d", id, got[id], want)
		}
	}

	update(span(21, queued), 0)
	got = results(t, st)
	if len(got) != keepResults {
		t.Fatalf("%d results kept, want %d", len(got), keepResults)
	}
	for id := uint64(queued - keepResults + 1); id <= queued; id++ {
		if _, ok := got[id]; !ok {
			t.Fatalf("result of %d is gone; the last %d are kept", id, keepResults)
		}
	}
}
