package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenBolt(t, storetest.Schema) })
}

func TestBoltFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	storetest.OpenBoltAt(t, path, storetest.Schema)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestBoltSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	v1 := store.Schema{Name: "svc", Version: 1, Buckets: []string{"a"}}
	s, err := store.OpenBolt(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("old")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A newer layout migrates at open.
	v2 := store.Schema{Name: "svc", Version: 2, Buckets: []string{"a", "b"}, Migrations: map[uint64]func(store.Tx) error{
		1: func(tx store.Tx) error {
			v := tx.Get("a", []byte("k"))
			return tx.Put("b", []byte("k"), append(v, "+migrated"...))
		},
	}}
	s, err = store.OpenBolt(path, v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	s.View(func(tx store.Tx) error { got = tx.Get("b", []byte("k")); return nil })
	if string(got) != "old+migrated" {
		t.Fatalf("migrated value = %q", got)
	}
	s.Close()

	// An older binary refuses a newer file, and no service opens another's file.
	for _, tc := range []struct {
		schema store.Schema
		want   string
	}{
		{v1, "newer than this binary"},
		{store.Schema{Name: "other", Version: 2}, `belongs to the "svc" service`},
	} {
		if _, err := store.OpenBolt(path, tc.schema); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenBolt(%s v%d) = %v, want error containing %q", tc.schema.Name, tc.schema.Version, err, tc.want)
		}
	}
}

// A backup taken while a writer goes on is a database that opens, passes the consistency check and
// holds a prefix of the writer's acknowledged puts, all of them up to the last acknowledged before
// the backup began.
func TestBackupWhileWriting(t *testing.T) {
	schema := store.Schema{Name: "svc", Version: 1, Buckets: []string{"b"}}
	s := storetest.OpenBolt(t, schema)
	put := func(i uint64) error {
		return s.Update(func(tx store.Tx) error { return tx.Put("b", store.Uint64Key(i), bytes.Repeat([]byte{byte(i)}, 512)) })
	}
	for i := uint64(1); i <= 100; i++ {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		i := uint64(100)
		for {
			select {
			case <-stop:
				done <- i
				return
			default:
			}
			if err := put(i + 1); err != nil {
				t.Error(err)
				done <- i
				return
			}
			i++
		}
	}()
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	close(stop)
	last := <-done
	if err != nil || f.Close() != nil {
		t.Fatalf("Backup: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n || n == 0 {
		t.Fatalf("Backup wrote %d bytes, file holds %d", n, fi.Size())
	}
	cp := storetest.OpenBoltAt(t, path, schema) // checks consistency at cleanup too
	if err := cp.Check(); err != nil {
		t.Fatal(err)
	}
	var keys []uint64
	cp.View(func(tx store.Tx) error {
		return tx.Scan("b", nil, nil, func(k, _ []byte) (bool, error) { keys = append(keys, store.KeyUint64(k)); return true, nil })
	})
	if len(keys) < 100 || uint64(len(keys)) > last {
		t.Fatalf("copy holds %d keys, want between 100 and %d", len(keys), last)
	}
	for i, k := range keys {
		if k != uint64(i+1) {
			t.Fatalf("copy's key %d is %d: not a prefix of the writes", i, k)
		}
	}
}

// Concurrent Batch calls share one transaction: while one call commits (held here inside its
// fn), 63 others queue, and then commit in exactly one more transaction. A lone call commits at
// once, without waiting for company.
func TestBoltBatchCoalesces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := store.OpenBolt(path, storetest.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := store.CommittedTxID(s)
	start := time.Now()
	if err := s.Batch(func(tx store.Tx) error { return tx.Put("a", []byte("lone"), nil) }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); store.CommittedTxID(s)-before != 1 || took > time.Second {
		t.Fatalf("a lone call took %d transactions and %v", store.CommittedTxID(s)-before, took)
	}
	before = store.CommittedTxID(s)
	hold, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.Batch(func(tx store.Tx) error {
			close(holding)
			<-hold
			return tx.Put("a", []byte("first"), nil)
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-holding
	for n := range 63 {
		wg.Go(func() {
			if err := s.Batch(func(tx store.Tx) error { return tx.Put("a", store.Uint64Key(uint64(n)), nil) }); err != nil {
				t.Error(err)
			}
		})
	}
	for store.BatchQueue(s) < 63 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	if got := store.CommittedTxID(s) - before; got != 2 {
		t.Fatalf("64 batched calls took %d transactions, want 2", got)
	}
}

// What Batch acknowledged is in the file after it is closed and opened again.
func TestBoltBatchDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := store.OpenBolt(path, storetest.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for n := range 100 {
		wg.Go(func() {
			if err := s.Batch(func(tx store.Tx) error { return tx.Put("a", store.Uint64Key(uint64(n)), []byte("v")) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.OpenBoltAt(t, path, storetest.Schema)
	count := 0
	s.View(func(tx store.Tx) error {
		return tx.Scan("a", nil, nil, func(_, _ []byte) (bool, error) { count++; return true, nil })
	})
	if count != 100 {
		t.Fatalf("after reopening, %d of 100 acknowledged batched writes are there", count)
	}
}

// In a shared batch, a call whose fn fails or panics is taken out: the others commit, the failing
// one returns its own error, and the panicking one panics in its caller's goroutine, with nothing
// of either written.
func TestBoltBatchFailuresStayAlone(t *testing.T) {
	s := storetest.OpenBolt(t, storetest.Schema)
	hold, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Batch(func(tx store.Tx) error { close(holding); <-hold; return tx.Put("a", []byte("first"), nil) }); err != nil {
			t.Error(err)
		}
	})
	<-holding
	refused := errors.New("refused")
	results := make([]any, 6)
	for n := range 6 {
		wg.Go(func() {
			defer func() { results[n] = recover() }()
			err := s.Batch(func(tx store.Tx) error {
				if err := tx.Put("a", store.Uint64Key(uint64(n)), nil); err != nil {
					return err
				}
				switch n {
				case 2:
					return refused
				case 4:
					panic("boom")
				}
				return nil
			})
			if n == 2 && !errors.Is(err, refused) || n != 2 && err != nil {
				t.Errorf("call %d: %v", n, err)
			}
		})
	}
	for store.BatchQueue(s) < 6 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	for n, p := range results {
		if (n == 4) != (p == "boom") {
			t.Errorf("call %d panicked with %v", n, p)
		}
	}
	err := s.View(func(tx store.Tx) error {
		for n := range 6 {
			if got := tx.Get("a", store.Uint64Key(uint64(n))) != nil; got != (n != 2 && n != 4) {
				t.Errorf("call %d's write stored: %v", n, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An appended bucket's pages are packed full: keys written in order, a commit at a time as a log
// writes them, take about half the leaf pages they take in a bucket split at half.
func TestBoltAppendedBucketsArePacked(t *testing.T) {
	schema := store.Schema{Name: "svc", Version: 1, Buckets: []string{"log", "plain"}, Appended: []string{"log"}}
	s := storetest.OpenBolt(t, schema)
	value := bytes.Repeat([]byte("v"), 100)
	for commit := range 50 {
		if err := s.Update(func(tx store.Tx) error {
			for i := range 100 {
				k := store.Uint64Key(uint64(commit*100 + i))
				if err := tx.Put("log", k, value); err != nil {
					return err
				}
				if err := tx.Put("plain", k, value); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	packed, plain := store.LeafPages(s, "log"), store.LeafPages(s, "plain")
	// 5,000 entries of 124 bytes (16-byte header, key, value) fill 152 pages of 4 KiB.
	if packed > 170 || plain < 250 {
		t.Fatalf("leaf pages: %d packed, %d plain; want about 152 and about twice that", packed, plain)
	}
	s.View(func(tx store.Tx) error {
		if got := tx.Get("log", store.Uint64Key(4999)); !bytes.Equal(got, value) {
			t.Errorf("last value = %q", got)
		}
		return nil
	})
}

func TestBoltAppendedMustBeABucket(t *testing.T) {
	_, err := store.OpenBolt(filepath.Join(t.TempDir(), "x.db"), store.Schema{Name: "svc", Version: 1, Buckets: []string{"a"}, Appended: []string{"b"}})
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("OpenBolt = %v, want an error naming the bucket", err)
	}
}
