package etcdstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestMain checks for leaked goroutines, ignoring only the HTTP connections between the members
// of an embedded cluster (etcd's rafthttp peer transport): after the members close, a client
// keep-alive connection and its server side wait on each other until rafthttp's read timeout.
// Nothing in this package uses net/http itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

// open opens a store for schema under prefix, closed when the test ends.
func open(t *testing.T, cli *clientv3.Client, prefix string, schema store.Schema, opts ...etcdstore.Option) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(cli, prefix, schema, opts...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// single is a one-member cluster the tests of this file share: each test uses its own prefix.
func single(t *testing.T) *clientv3.Client {
	t.Helper()
	return etcdtest.Start(t, 1).Client()
}

func TestConformance(t *testing.T) {
	cli := single(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, cli, "/conformance/"+t.Name(), storetest.Schema)
	})
}

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func scanAll(t *testing.T, s store.Store, bucket string) []string {
	t.Helper()
	var got []string
	err := s.View(func(tx store.Tx) error {
		return tx.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
			got = append(got, string(k)+"="+string(v))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A transaction reads its own buffered writes, merged in key order with what etcd holds, through
// Get, Scan and Last, including after a Clear; and what it commits is what it read.
func TestTransactionSeesItsWrites(t *testing.T) {
	s := open(t, single(t), "/own", storetest.Schema)
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, k := range []string{"a1", "a3", "a5"} {
			if err := tx.Put("a", []byte(k), []byte("old")); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name      string
		fn        func(tx store.Tx) error
		scan      []string // Scan of bucket a inside the transaction, after fn
		last      string   // Last of bucket a inside the transaction
		committed []string // Scan of bucket a after commit
	}{
		{
			name: "put and delete",
			fn: func(tx store.Tx) error {
				tx.Put("a", []byte("a2"), []byte("new"))
				tx.Put("a", []byte("a3"), []byte("new"))
				tx.Put("a", []byte("a9"), []byte("new"))
				return tx.Delete("a", []byte("a1"))
			},
			scan:      []string{"a2=new", "a3=new", "a5=old", "a9=new"},
			last:      "a9=new",
			committed: []string{"a2=new", "a3=new", "a5=old", "a9=new"},
		},
		{
			name: "delete the last",
			fn: func(tx store.Tx) error {
				tx.Delete("a", []byte("a9"))
				return tx.Delete("a", []byte("a5"))
			},
			scan:      []string{"a2=new", "a3=new"},
			last:      "a3=new",
			committed: []string{"a2=new", "a3=new"},
		},
		{
			name: "clear then put",
			fn: func(tx store.Tx) error {
				tx.Put("a", []byte("a0"), []byte("gone"))
				tx.Clear("a")
				tx.Put("a", []byte("a3"), []byte("again"))
				return tx.Put("a", []byte("a4"), []byte("again"))
			},
			scan:      []string{"a3=again", "a4=again"},
			last:      "a4=again",
			committed: []string{"a3=again", "a4=again"},
		},
		{
			name:      "clear",
			fn:        func(tx store.Tx) error { return tx.Clear("a") },
			committed: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var scan []string
			var last string
			mustUpdate(t, s, func(tx store.Tx) error {
				scan, last = nil, ""
				if err := tc.fn(tx); err != nil {
					return err
				}
				if k, v := tx.Last("a"); k != nil {
					last = string(k) + "=" + string(v)
				}
				return tx.Scan("a", nil, nil, func(k, v []byte) (bool, error) {
					scan = append(scan, string(k)+"="+string(v))
					return true, nil
				})
			})
			if fmt.Sprint(scan) != fmt.Sprint(tc.scan) || last != tc.last {
				t.Errorf("inside: Scan = %v, Last = %q; want %v, %q", scan, last, tc.scan, tc.last)
			}
			if got := scanAll(t, s, "a"); fmt.Sprint(got) != fmt.Sprint(tc.committed) {
				t.Errorf("committed = %v, want %v", got, tc.committed)
			}
		})
	}
}

// Bucket names that look like paths, and binary keys, stay in their bucket, in byte order.
func TestKeyLayout(t *testing.T) {
	schema := store.Schema{Name: "layout", Version: 1, Buckets: []string{"x", "x/y", "x%2Fy"}}
	s := open(t, single(t), "/layout", schema)
	keys := [][]byte{{0xff}, {0x00}, []byte("y/k"), {0x00, 0x01}, []byte("/")}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, b := range schema.Buckets {
			for _, k := range keys {
				if err := tx.Put(b, k, []byte(b)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, b := range schema.Buckets {
		var got [][]byte
		s.View(func(tx store.Tx) error {
			return tx.Scan(b, nil, nil, func(k, v []byte) (bool, error) {
				if string(v) != b {
					return false, fmt.Errorf("bucket %q holds a value of %q", b, v)
				}
				got = append(got, bytes.Clone(k))
				return true, nil
			})
		})
		want := [][]byte{{0x00}, {0x00, 0x01}, []byte("/"), []byte("y/k"), {0xff}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("bucket %q: keys %q, want %q", b, got, want)
		}
	}
}

// A transaction that read something another writer changed before it committed runs again, for
// every kind of read: a key read present or absent, a range read (an insert, a change or a
// deletion inside it) and Last.
func TestConflictRerunsTransaction(t *testing.T) {
	cli := single(t)
	tests := []struct {
		name  string
		read  func(tx store.Tx)
		other func(tx store.Tx) error // committed by another store during the first run
	}{
		{"get present", func(tx store.Tx) { tx.Get("a", []byte("k2")) },
			func(tx store.Tx) error { return tx.Put("a", []byte("k2"), []byte("changed")) }},
		{"get absent", func(tx store.Tx) { tx.Get("a", []byte("k0")) },
			func(tx store.Tx) error { return tx.Put("a", []byte("k0"), []byte("new")) }},
		{"scan insert", scanA, func(tx store.Tx) error { return tx.Put("a", []byte("k15"), []byte("new")) }},
		{"scan change", scanA, func(tx store.Tx) error { return tx.Put("a", []byte("k3"), []byte("changed")) }},
		{"scan delete", scanA, func(tx store.Tx) error { return tx.Delete("a", []byte("k2")) }},
		{"scan clear", scanA, func(tx store.Tx) error { return tx.Clear("a") }},
		{"scan stopped by an ignored error", func(tx store.Tx) {
			tx.Scan("a", nil, nil, func(k, v []byte) (bool, error) { return false, errors.New("stop") })
		}, func(tx store.Tx) error { return tx.Delete("a", []byte("k1")) }},
		{"last insert", func(tx store.Tx) { tx.Last("a") },
			func(tx store.Tx) error { return tx.Put("a", []byte("k9"), []byte("new")) }},
		{"last delete", func(tx store.Tx) { tx.Last("a") },
			func(tx store.Tx) error { return tx.Delete("a", []byte("k3")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "/conflict/" + tc.name
			s := open(t, cli, prefix, storetest.Schema)
			other := open(t, cli, prefix, storetest.Schema)
			mustUpdate(t, s, func(tx store.Tx) error {
				for _, k := range []string{"k1", "k2", "k3"} {
					tx.Put("a", []byte(k), []byte("v"))
				}
				return nil
			})
			runs := 0
			mustUpdate(t, s, func(tx store.Tx) error {
				runs++
				tc.read(tx)
				if runs == 1 {
					mustUpdate(t, other, tc.other)
				}
				return tx.Put("b", []byte("out"), []byte(fmt.Sprint(runs)))
			})
			if runs != 2 {
				t.Fatalf("fn ran %d times, want 2 (once more after the conflict)", runs)
			}
		})
	}
	// Writes alone, and reads of what nobody changed, do not conflict.
	s := open(t, cli, "/conflict/none", storetest.Schema)
	other := open(t, cli, "/conflict/none", storetest.Schema)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", []byte("m"), []byte("v")) })
	runs := 0
	mustUpdate(t, s, func(tx store.Tx) error {
		runs++
		tx.Get("a", []byte("mine"))
		scanPrefix(tx, "p/")
		// A scan that starts past its prefix reads nothing.
		tx.Scan("b", []byte("p/"), []byte("q"), func(k, v []byte) (bool, error) { return true, nil })
		// A scan that stops early read only up to where it stopped.
		tx.Scan("b", nil, nil, func(k, v []byte) (bool, error) { return false, nil })
		if runs == 1 {
			mustUpdate(t, other, func(tx store.Tx) error {
				tx.Put("b", []byte("z"), []byte("v"))
				return tx.Put("a", []byte("q/other"), []byte("v"))
			})
		}
		return tx.Put("a", []byte("mine"), []byte("v"))
	})
	if runs != 1 {
		t.Fatalf("fn ran %d times though nothing it read changed", runs)
	}
}

func scanA(tx store.Tx) { scanPrefix(tx, "") }

func scanPrefix(tx store.Tx, prefix string) {
	tx.Scan("a", []byte(prefix), nil, func(k, v []byte) (bool, error) { return true, nil })
}

func TestSchema(t *testing.T) {
	cli := single(t)
	v1 := store.Schema{Name: "svc", Version: 1, Buckets: []string{"a"}}
	s := open(t, cli, "/schema", v1)
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("old")) })

	v2 := store.Schema{Name: "svc", Version: 2, Buckets: []string{"a", "b"}, Migrations: map[uint64]func(store.Tx) error{
		1: func(tx store.Tx) error {
			return tx.Put("b", []byte("k"), append(tx.Get("a", []byte("k")), "+migrated"...))
		},
	}}
	s2 := open(t, cli, "/schema/", v2)
	var got []byte
	s2.View(func(tx store.Tx) error { got = tx.Get("b", []byte("k")); return nil })
	if string(got) != "old+migrated" {
		t.Fatalf("migrated value = %q", got)
	}
	open(t, cli, "/schema", v2) // reopening at the current version is fine

	for _, tc := range []struct {
		prefix string
		schema store.Schema
		want   string
	}{
		{"/schema", v1, "newer than this binary"},
		{"/schema", store.Schema{Name: "other", Version: 2}, `belongs to the "svc" service`},
		{"", v1, "prefix is empty"},
		{"/", v1, "prefix is empty"},
	} {
		if _, err := etcdstore.Open(cli, tc.prefix, tc.schema); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q, %s v%d) = %v, want error containing %q", tc.prefix, tc.schema.Name, tc.schema.Version, err, tc.want)
		}
	}
}

// A transaction over the cluster's limits fails whole with ErrTooLarge.
func TestTooLarge(t *testing.T) {
	s := open(t, single(t), "/large", storetest.Schema)
	tests := []struct {
		name string
		fn   func(tx store.Tx) error
	}{
		{"too many writes", func(tx store.Tx) error {
			for n := range etcdtest.MaxTxnOps + 1 {
				if err := tx.Put("a", store.Uint64Key(uint64(n)), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}},
		{"too many bytes", func(tx store.Tx) error {
			for n := range 4 {
				if err := tx.Put("a", store.Uint64Key(uint64(n)), bytes.Repeat([]byte{'x'}, 1<<20)); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Update(tc.fn); !errors.Is(err, etcdstore.ErrTooLarge) {
				t.Fatalf("Update = %v, want ErrTooLarge", err)
			}
			if got := scanAll(t, s, "a"); len(got) != 0 {
				t.Fatalf("a transaction too large wrote %d keys", len(got))
			}
		})
	}
}

func TestBackup(t *testing.T) {
	s := open(t, single(t), "/backup", storetest.Schema)
	mustUpdate(t, s, func(tx store.Tx) error {
		tx.Put("a", []byte{0xff, 0x00}, []byte("bin"))
		tx.Put("b", []byte("k"), nil)
		return tx.Put("a", []byte("gone"), []byte("v"))
	})
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("a", []byte("gone")) })
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Backup = %d, %v; wrote %d bytes", n, err, buf.Len())
	}
	dec := json.NewDecoder(&buf)
	var head etcdstore.BackupHeader
	if err := dec.Decode(&head); err != nil || head.Format != etcdstore.BackupFormat || head.Prefix != "/backup" || head.Revision == 0 {
		t.Fatalf("header %+v, %v", head, err)
	}
	var got []string
	for dec.More() {
		var e etcdstore.BackupEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%x=%s", e.Bucket, e.Key, e.Value))
	}
	want := []string{"a/ff00=bin", "b/6b=", "meta/6e616d65=conformance", "meta/736368656d61=\x00\x00\x00\x00\x00\x00\x00\x01"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

// Concurrent Batch calls share commits: 64 increments of one counter advance etcd's revision (one
// per committed Txn) far fewer than 64 times, and none is lost.
func TestBatchGroupsCommits(t *testing.T) {
	cli := single(t)
	s := open(t, cli, "/group", storetest.Schema, etcdstore.WithBatchLimits(20*time.Millisecond, 64))
	revision := func() int64 {
		resp, err := cli.Get(context.Background(), "/group/meta/name")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	before := revision()
	const calls = 64
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			err := s.Batch(func(tx store.Tx) error {
				n := store.KeyUint64(tx.Get("a", []byte("seq")))
				return tx.Put("a", []byte("seq"), store.Uint64Key(n+1))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n uint64
	s.View(func(tx store.Tx) error { n = store.KeyUint64(tx.Get("a", []byte("seq"))); return nil })
	commits := revision() - before
	if n != calls || commits > calls/4 {
		t.Fatalf("counter %d after %d calls in %d commits; want %d in at most %d", n, calls, commits, calls, calls/4)
	}
}

// A fn that panics in a shared batch panics in its own caller's goroutine, and the calls batched
// with it commit.
func TestBatchPanicStaysWithItsCaller(t *testing.T) {
	s := open(t, single(t), "/panic", storetest.Schema, etcdstore.WithBatchLimits(20*time.Millisecond, 64))
	var wg sync.WaitGroup
	recovered := make([]any, 8)
	for n := range 8 {
		wg.Go(func() {
			defer func() { recovered[n] = recover() }()
			err := s.Batch(func(tx store.Tx) error {
				if n == 3 {
					panic("boom")
				}
				return tx.Put("a", store.Uint64Key(uint64(n)), []byte("v"))
			})
			if err != nil {
				t.Errorf("call %d: %v", n, err)
			}
		})
	}
	wg.Wait()
	for n, p := range recovered {
		if (p != nil) != (n == 3) {
			t.Errorf("call %d recovered %v", n, p)
		}
	}
	if got := scanAll(t, s, "a"); len(got) != 7 {
		t.Fatalf("stored %v, want the 7 calls that did not panic", got)
	}
}

// A transaction whose first read is a scan starting past its prefix (which reads nothing)
// commits at once, also in a bucket that has seen deletions.
func TestScanPastPrefixFirst(t *testing.T) {
	s := open(t, single(t), "/pastprefix", storetest.Schema, etcdstore.WithConflictTimeout(time.Second))
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("b", []byte("x")) })
	runs := 0
	mustUpdate(t, s, func(tx store.Tx) error {
		runs++
		tx.Scan("b", []byte("p/"), []byte("q"), func(k, v []byte) (bool, error) { return true, nil })
		return tx.Put("a", []byte("k"), []byte("v"))
	})
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
}

// CheckTxnOps accepts a cluster run with the transaction limit Treaty needs and refuses one run
// with less (etcd's default among them), naming the setting.
func TestCheckTxnOps(t *testing.T) {
	tests := []struct {
		name string
		opts []etcdtest.Option
		want string // "" for no error
	}{
		{"required", nil, ""},
		{"etcd's default", []etcdtest.Option{etcdtest.WithMaxTxnOps(128)}, "--max-txn-ops=8192"},
		{"one short", []etcdtest.Option{etcdtest.WithMaxTxnOps(etcdstore.RequiredTxnOps - 1)}, "--max-txn-ops=8192"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli := etcdtest.Start(t, 1, tc.opts...).Client()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := etcdstore.CheckTxnOps(ctx, cli, "/treaty")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckTxnOps = %v, want an error containing %q", err, tc.want)
			}
			resp, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Count != 0 {
				t.Fatalf("the check wrote %v keys (err %v), want none", resp, err)
			}
		})
	}
}
