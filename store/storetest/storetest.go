// Package storetest holds the conformance suite every store.Store backend must pass, and a helper
// that opens a real bbolt file in a test's temp folder and checks its integrity at cleanup.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/treaty-dev/treaty/store"
)

// OpenBolt opens a bbolt store for schema in t's temp folder, and at cleanup closes it after
// checking the file's consistency.
func OpenBolt(t testing.TB, schema store.Schema) *store.Bolt {
	t.Helper()
	return OpenBoltAt(t, filepath.Join(t.TempDir(), schema.Name+".db"), schema)
}

// OpenBoltAt is OpenBolt for a chosen path, so a test can reopen the same file.
func OpenBoltAt(t testing.TB, path string, schema store.Schema) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(path, schema)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("store %s failed its consistency check: %v", path, err)
		}
		s.Close()
	})
	return s
}

// Schema is the layout the conformance suite uses.
var Schema = store.Schema{Name: "conformance", Version: 1, Buckets: []string{"a", "b"}}

// Run runs the conformance suite against stores made by open, which must return an empty store
// opened with Schema.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("PutGetDelete", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("v1")) })
		if got := get(t, s, "a", "k"); string(got) != "v1" {
			t.Fatalf("Get = %q, want v1", got)
		}
		if got := get(t, s, "b", "k"); got != nil {
			t.Fatalf("Get in another bucket = %q, want nil", got)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("a", []byte("k")) })
		if got := get(t, s, "a", "k"); got != nil {
			t.Fatalf("Get after Delete = %q, want nil", got)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("a", []byte("missing")) })
	})
	t.Run("FailedUpdateWritesNothing", func(t *testing.T) {
		s := open(t)
		boom := errors.New("boom")
		err := s.Update(func(tx store.Tx) error {
			if err := tx.Put("a", []byte("k"), []byte("v")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update error = %v, want boom", err)
		}
		if got := get(t, s, "a", "k"); got != nil {
			t.Fatalf("value of a failed Update is visible: %q", got)
		}
	})
	t.Run("GetReturnsCopy", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("value")) })
		got := get(t, s, "a", "k")
		got[0] = 'X'
		if again := get(t, s, "a", "k"); string(again) != "value" {
			t.Fatalf("mutating a returned value changed the store: %q", again)
		}
	})
	t.Run("ScanOrderPrefixStart", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error {
			for _, k := range []string{"p/3", "p/1", "q/1", "p/2", "o/9"} {
				if err := tx.Put("a", []byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			return nil
		})
		tests := []struct {
			prefix, start string
			limit         int
			want          []string
		}{
			{"p/", "", 0, []string{"p/1", "p/2", "p/3"}},
			{"p/", "p/2", 0, []string{"p/2", "p/3"}},
			{"p/", "a", 0, []string{"p/1", "p/2", "p/3"}},
			{"p/", "", 2, []string{"p/1", "p/2"}},
			{"", "", 0, []string{"o/9", "p/1", "p/2", "p/3", "q/1"}},
			{"z/", "", 0, nil},
		}
		for _, tc := range tests {
			var got []string
			err := s.View(func(tx store.Tx) error {
				var start []byte
				if tc.start != "" {
					start = []byte(tc.start)
				}
				return tx.Scan("a", []byte(tc.prefix), start, func(k, v []byte) (bool, error) {
					if !bytes.Equal(v, []byte("v"+string(k))) {
						return false, fmt.Errorf("value of %s = %q", k, v)
					}
					got = append(got, string(k))
					return tc.limit == 0 || len(got) < tc.limit, nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Scan(prefix %q, start %q, limit %d) = %v, want %v", tc.prefix, tc.start, tc.limit, got, tc.want)
			}
		}
	})
	t.Run("LastAndClear", func(t *testing.T) {
		s := open(t)
		var k, v []byte
		mustView(t, s, func(tx store.Tx) error { k, v = tx.Last("a"); return nil })
		if k != nil || v != nil {
			t.Fatalf("Last of empty bucket = %q/%q", k, v)
		}
		mustUpdate(t, s, func(tx store.Tx) error {
			for n := uint64(1); n <= 300; n++ {
				if err := tx.Put("a", store.Uint64Key(n), []byte{byte(n)}); err != nil {
					return err
				}
			}
			return nil
		})
		mustView(t, s, func(tx store.Tx) error { k, v = tx.Last("a"); return nil })
		if store.KeyUint64(k) != 300 || v[0] != byte(300%256) {
			t.Fatalf("Last = %d/%v, want 300", store.KeyUint64(k), v)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Clear("a") })
		mustView(t, s, func(tx store.Tx) error { k, v = tx.Last("a"); return nil })
		if k != nil {
			t.Fatalf("Last after Clear = %q", k)
		}
	})
	t.Run("UnknownBucket", func(t *testing.T) {
		s := open(t)
		err := s.Update(func(tx store.Tx) error { return tx.Put("nope", []byte("k"), []byte("v")) })
		if !errors.Is(err, store.ErrUnknownBucket) {
			t.Fatalf("Put to unknown bucket: %v, want ErrUnknownBucket", err)
		}
	})
	t.Run("BatchConcurrent", func(t *testing.T) { batchConcurrent(t, open(t)) })
	t.Run("BatchFailureIsolated", func(t *testing.T) { batchFailureIsolated(t, open(t)) })
	t.Run("BatchConflictWinsOnce", func(t *testing.T) { batchConflictWinsOnce(t, open(t)) })
	t.Run("ReadOnlyViewRejectsWrites", func(t *testing.T) {
		s := open(t)
		if err := s.View(func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("v")) }); err == nil {
			t.Fatal("Put inside View succeeded")
		}
	})
}

func get(t *testing.T, s store.Store, bucket, key string) []byte {
	t.Helper()
	var v []byte
	mustView(t, s, func(tx store.Tx) error { v = tx.Get(bucket, []byte(key)); return nil })
	return v
}

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustView(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// batchCalls is how many concurrent Batch calls the Batch tests make: more than a batch usually
// holds at once, so that several batches form.
const batchCalls = 64

// batchConcurrent: concurrent Batch calls all commit, and each sees the writes committed before
// it (a read-modify-write of one counter by every call loses no increment).
func batchConcurrent(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, batchCalls)
	for n := range batchCalls {
		wg.Go(func() {
			errs <- s.Batch(func(tx store.Tx) error {
				c := store.KeyUint64(tx.Get("a", []byte("counter")))
				if err := tx.Put("a", []byte("counter"), store.Uint64Key(c+1)); err != nil {
					return err
				}
				return tx.Put("b", store.Uint64Key(uint64(n)), []byte("v"))
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Batch: %v", err)
		}
	}
	if got := store.KeyUint64(get(t, s, "a", "counter")); got != batchCalls {
		t.Fatalf("counter = %d after %d batched increments", got, batchCalls)
	}
	for n := range batchCalls {
		if get(t, s, "b", string(store.Uint64Key(uint64(n)))) == nil {
			t.Fatalf("the write of call %d is missing", n)
		}
	}
}

// batchFailureIsolated: a call whose fn fails gets its own error and writes nothing; the calls
// batched with it commit.
func batchFailureIsolated(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, batchCalls)
	for n := range batchCalls {
		wg.Go(func() {
			errs[n] = s.Batch(func(tx store.Tx) error {
				if err := tx.Put("a", store.Uint64Key(uint64(n)), []byte("v")); err != nil {
					return err
				}
				if n%8 == 3 {
					return fmt.Errorf("call %d: %w", n, boom)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for n, err := range errs {
		stored := get(t, s, "a", string(store.Uint64Key(uint64(n)))) != nil
		switch {
		case n%8 == 3 && (!errors.Is(err, boom) || err.Error() != fmt.Sprintf("call %d: boom", n)):
			t.Errorf("failing call %d returned %v, want its own error", n, err)
		case n%8 == 3 && stored:
			t.Errorf("failing call %d wrote its key", n)
		case n%8 != 3 && (err != nil || !stored):
			t.Errorf("call %d batched with failing ones: err %v, stored %v", n, err, stored)
		}
	}
}

// batchConflictWinsOnce: calls racing to claim the same key, each checking inside its
// transaction, succeed exactly once, and every other call learns it lost.
func batchConflictWinsOnce(t *testing.T, s store.Store) {
	taken := errors.New("taken")
	var wg sync.WaitGroup
	errs := make([]error, batchCalls)
	for n := range batchCalls {
		wg.Go(func() {
			errs[n] = s.Batch(func(tx store.Tx) error {
				if err := tx.Put("b", store.Uint64Key(uint64(n)), []byte("v")); err != nil {
					return err
				}
				if tx.Get("a", []byte("claim")) != nil {
					return taken
				}
				return tx.Put("a", []byte("claim"), store.Uint64Key(uint64(n)))
			})
		})
	}
	wg.Wait()
	winner := -1
	for n, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("calls %d and %d both claimed the key", winner, n)
		case err == nil:
			winner = n
		case !errors.Is(err, taken):
			t.Fatalf("call %d: %v, want taken", n, err)
		}
	}
	if winner < 0 {
		t.Fatal("no call claimed the key")
	}
	if got := store.KeyUint64(get(t, s, "a", "claim")); got != uint64(winner) {
		t.Fatalf("the key holds call %d's claim, but call %d was told it won", got, winner)
	}
	for n := range batchCalls {
		if stored := get(t, s, "b", string(store.Uint64Key(uint64(n)))) != nil; stored != (n == winner) {
			t.Errorf("call %d: its other write stored = %v, want %v", n, stored, n == winner)
		}
	}
}
