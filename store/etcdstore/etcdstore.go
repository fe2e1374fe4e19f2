// Package etcdstore is a store.Store kept in an etcd cluster, so that several replicas of a
// service share one state that survives the loss of any minority of the cluster's members. It
// passes the same conformance suite as the embedded bbolt backend (store/storetest).
//
// # Layout
//
// A store owns every key under its prefix. A key k of bucket b is the etcd key
//
//	<prefix>/<PathEscape(b)>/<k>
//
// Escaping the bucket name (url.PathEscape turns "/" into "%2F") means it never holds a "/", so no
// bucket's keys fall in another's range whatever bytes the keys hold, and keys of one bucket sort in
// etcd as their bytes do, so a Scan is one ordered range read. The schema's name and version live
// in the bucket "meta", as in a bbolt file; the key <prefix>/<PathEscape(b)> (no trailing slash) is
// the bucket's delete marker (see below). Give each store its own prefix, and never one that
// starts with another store's prefix followed by "/". Only stores of this package may write under
// a prefix: a key deleted by anything else (etcdctl, a lease) would not rewrite its bucket's
// delete marker, and a concurrent Scan would miss the deletion.
//
// # Transactions
//
// Update is an optimistic, serializable transaction. Its first read fixes a snapshot revision and
// every later read is made at that revision (WithRev), so fn sees one consistent state. Writes are
// buffered in the transaction (and seen by its own later reads) and sent at the end in one etcd
// Txn whose If clause holds when nothing fn read has changed since the snapshot:
//
//   - each key read by Get (present or absent): its ModRevision equals the one read (0 when it was
//     absent, which etcd compares as equal for a missing key);
//   - each range read by Scan or Last: every key in the part of the range fn saw has ModRevision
//     at most the snapshot revision, which catches keys added or changed since;
//   - a range read also compares the bucket's delete marker, a key every transaction that deletes
//     from (or clears) the bucket rewrites, which catches deletions that a range comparison
//     cannot see (a deleted key is simply not there to compare). Last compares the key it
//     returned instead, as only its deletion matters.
//
// If the comparison fails, another writer got in first: the transaction is dropped and fn runs
// again on a fresh snapshot, after a short random pause, until it commits or the retry budget
// (WithConflictTimeout) is spent. etcd's concurrency.STM does the same for single keys but has no
// range reads, which Scan and Last need, hence this small read-set tracking of our own. An Update
// whose fn writes nothing sends no Txn.
//
// # Durability and failures
//
// etcd acknowledges a Txn once a quorum of members has written it to its fsync'd write-ahead log,
// so an Update that returns nil is durable while a majority of the members survives. Every etcd
// request has a deadline (WithRequestTimeout). A cluster that does not answer in time, has no
// leader or cannot be reached gives a fail.Unavailable error saying so. A write that times out
// may still be applied later, when the cluster recovers; it is one etcd Txn, so it is applied
// entirely or not at all.
//
// # Limits
//
// One transaction is one etcd Txn, so it is bounded by the cluster's --max-txn-ops (default 128:
// the count of keys written, and separately of comparisons, roughly one per key read, range read
// and deleted-from bucket) and --max-request-bytes (default 1.5 MiB). A transaction over either
// limit fails with an error wrapping ErrTooLarge and writes nothing; it is never split. Treaty's
// migrations write a few hundred keys, and the revoker's group commits (up to 1,024 requests of
// a few keys each), its compaction chunks and the issuer's inventory batches write thousands
// under load, so Treaty requires --max-txn-ops=8192 (RequiredTxnOps) and refuses to start on a
// cluster that has less (CheckTxnOps). A range comparison makes etcd read the range on commit, so an
// Update that scans a large bucket costs that read on every attempt, and an Update that scans to
// the end of a bucket others keep appending to conflicts with every append: scan such buckets in
// a View, or stop the scan early, where the transaction allows.
//
// # Batch and Backup
//
// Batch is group commit, as in bbolt: concurrent calls run one after another in one transaction
// and commit in one Txn, which saves round trips and, for writers of one hot key such as a
// sequence counter, turns conflicting transactions into one. A failing call is taken out of the
// batch and run alone; a batch too large for one Txn runs each call alone (WithBatchLimits).
// Backup writes the store as of one revision as JSON lines (see Backup).
package etcdstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// metaBucket holds the schema's name and version, like the bbolt backend's.
const metaBucket = "meta"

var (
	nameKey   = []byte("name")
	schemaKey = []byte("schema")
)

// Defaults of the options.
const (
	// DefaultRequestTimeout bounds each etcd request. etcd's own server-side timeout is 5 s plus
	// twice the election timeout; answering sooner lets a caller's retry reach a healthy replica.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultConflictTimeout bounds how long a transaction is retried while it keeps conflicting
	// with concurrent writers.
	DefaultConflictTimeout = 30 * time.Second
)

// ErrTooLarge is wrapped by the error of a transaction that exceeds the cluster's limits on
// operations per Txn or on request size. Nothing of it was written.
var ErrTooLarge = errors.New("etcdstore: transaction too large for one etcd Txn")

// Option tunes a Store at open.
type Option func(*options)

type options struct {
	requestTimeout  time.Duration
	conflictTimeout time.Duration
	batchDelay      time.Duration
	batchSize       int
}

// WithRequestTimeout bounds each etcd request (default DefaultRequestTimeout). A request that
// takes longer fails with a fail.Unavailable error.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.requestTimeout = d
		}
	}
}

// WithConflictTimeout bounds how long Update and Batch retry a transaction that keeps losing to
// concurrent writers before giving up with a fail.Aborted error (default DefaultConflictTimeout).
func WithConflictTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.conflictTimeout = d
		}
	}
}

// Store is a store.Store kept under one prefix of an etcd cluster.
type Store struct {
	client  *clientv3.Client
	prefix  string
	name    string // the schema's, for error messages
	buckets map[string]bool
	opts    options
	// ctx ends at Close, so that requests in flight end with it.
	ctx    context.Context
	cancel context.CancelFunc

	// The calls of the batch being gathered (batch.go).
	mu      sync.Mutex
	pending []call
	timer   *time.Timer
}

var _ store.Store = (*Store)(nil)

// Open returns the store of schema under prefix in the cluster client talks to, running any
// migrations the stored layout needs (in one transaction, so replicas opening at once run them
// once). It refuses a prefix that holds another service's store or a newer layout, as
// store.OpenBolt does. The client stays the caller's: Close does not close it.
func Open(client *clientv3.Client, prefix string, schema store.Schema, opts ...Option) (*Store, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return nil, errors.New("etcdstore: the key prefix is empty; give each store its own, e.g. /treaty/registry")
	}
	if schema.Name == "" {
		return nil, errors.New("etcdstore: the schema has no name")
	}
	s := &Store{
		client:  client,
		prefix:  prefix,
		name:    schema.Name,
		buckets: map[string]bool{metaBucket: true},
		opts: options{requestTimeout: DefaultRequestTimeout, conflictTimeout: DefaultConflictTimeout,
			batchDelay: DefaultBatchDelay, batchSize: DefaultBatchSize},
	}
	for _, o := range opts {
		o(&s.opts)
	}
	for _, b := range schema.Buckets {
		if b == "" {
			return nil, errors.New("etcdstore: the schema names an empty bucket")
		}
		s.buckets[b] = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.Update(func(tx store.Tx) error { return migrate(tx, schema) }); err != nil {
		s.cancel()
		return nil, fmt.Errorf("open the %s store at etcd prefix %s: %w", schema.Name, prefix, err)
	}
	return s, nil
}

func migrate(tx store.Tx, schema store.Schema) error {
	if got := tx.Get(metaBucket, nameKey); got != nil && string(got) != schema.Name {
		return fmt.Errorf("the prefix belongs to the %q service, not %q", got, schema.Name)
	}
	version := schema.Version
	if raw := tx.Get(metaBucket, schemaKey); len(raw) == 8 {
		version = binary.BigEndian.Uint64(raw)
	}
	if version == schema.Version && tx.Get(metaBucket, nameKey) != nil {
		return nil // nothing to write: most opens send no Txn
	}
	if err := schema.Upgrade(tx, version); err != nil {
		return err
	}
	if err := tx.Put(metaBucket, nameKey, []byte(schema.Name)); err != nil {
		return err
	}
	return tx.Put(metaBucket, schemaKey, binary.BigEndian.AppendUint64(nil, schema.Version))
}

// View implements store.Store: every read is made at the revision of the first, so fn sees one
// consistent state.
func (s *Store) View(fn func(store.Tx) error) error {
	t := s.newTx(false)
	err := fn(t)
	if t.err != nil {
		// A failed read returned nil to fn, which may have taken it for a missing key: the
		// read's error is the one to report.
		return t.err
	}
	return err
}

// Update implements store.Store; see the package documentation for how it stays serializable.
func (s *Store) Update(fn func(store.Tx) error) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		t := s.newTx(true)
		err := fn(t)
		switch {
		case errors.Is(t.err, errCompacted):
			// The snapshot was compacted away mid-transaction: like a conflict, start over.
		case t.err != nil:
			return t.err
		case err != nil:
			return err
		default:
			committed, err := t.commit()
			if err != nil || committed {
				return err
			}
		}
		if time.Since(start) > s.opts.conflictTimeout {
			return fail.Abortedf("the %s's transaction kept conflicting with concurrent writers for %v (%d attempts); retry",
				s.name, s.opts.conflictTimeout, attempt+1)
		}
		if err := s.pause(attempt); err != nil {
			return err
		}
	}
}

// Close implements store.Store. It ends requests in flight but leaves the client open.
func (s *Store) Close() error {
	s.cancel()
	return nil
}

// request returns the context of one etcd request.
func (s *Store) request() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.requestTimeout)
}

// pause waits a random time, growing with attempt up to 32 ms, so that writers that conflicted
// do not collide again in step.
func (s *Store) pause(attempt int) error {
	limit := time.Millisecond << min(attempt, 5)
	timer := time.NewTimer(rand.N(limit))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-s.ctx.Done():
		return fmt.Errorf("the %s store is closed", s.name)
	}
}

// bucketPrefix is the etcd key prefix of bucket's keys.
func (s *Store) bucketPrefix(bucket string) string {
	return s.marker(bucket) + "/"
}

// marker is bucket's delete marker: rewritten by every transaction that deletes from the bucket.
func (s *Store) marker(bucket string) string {
	return s.prefix + "/" + url.PathEscape(bucket)
}
