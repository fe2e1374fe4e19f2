// Package store is the small transactional key-value interface every Treaty service keeps its state
// behind, with bbolt as the embedded backend. Keys are ordered bytes within named buckets, so range
// scans answer list queries; an etcd backend can implement the same interface and pass the same
// conformance suite (store/storetest).
package store

import (
	"context"
	"errors"
	"io"
)

// Store is a transactional, ordered key-value store.
type Store interface {
	// View runs fn in a read-only transaction that sees one consistent state.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction. If fn returns nil the transaction is committed, and
	// it is durable (fsync'd) when Update returns nil. If fn returns an error nothing is written.
	Update(fn func(Tx) error) error
	// Batch runs fn in a read-write transaction that concurrent Batch calls may share, so that
	// many small writes cost one commit and one fsync (group commit). It is durable when Batch
	// returns nil, like Update. Because the shared transaction is rolled back and run again
	// without a call whose fn failed, and that call is then run alone, fn may run more than
	// once: it must be idempotent, decide only from what it reads in tx, and have no effect
	// outside tx (set results the caller reads only after Batch returns, overwriting them on
	// every run). Calls in one batch run one after another and see each other's writes, so fn can
	// detect a conflict with a concurrent call by reading tx. A failing fn does not fail the
	// others; its own error is returned from its solo run. Batch trades up to the store's batch
	// delay of latency for throughput: use it where many writers commit at once.
	Batch(fn func(Tx) error) error
	// Backup writes a consistent copy of the whole store to w, as of one transaction, while
	// writers go on, and returns the number of bytes written. The copy is in the backend's own
	// format: for bbolt, a database file that opens as it is.
	Backup(w io.Writer) (int64, error)
	// Close releases the store. Transactions must not be used after it.
	Close() error
}

// Tx is one transaction. Byte slices passed to callbacks are valid only during the callback;
// values returned by Get are copies the caller owns.
type Tx interface {
	// Get returns a copy of the value under key, or nil if there is none.
	Get(bucket string, key []byte) []byte
	// Put stores value under key. It fails in a read-only transaction.
	Put(bucket string, key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(bucket string, key []byte) error
	// Scan calls fn for each key that has prefix and is not before start, in key order, until fn
	// returns false or an error. A nil start begins at the first key with the prefix.
	Scan(bucket string, prefix, start []byte, fn func(key, value []byte) (bool, error)) error
	// Last returns copies of the last key and value in bucket, or nils if it is empty.
	Last(bucket string) (key, value []byte)
	// Clear removes every key from bucket.
	Clear(bucket string) error
}

// ErrUnknownBucket is returned when a transaction names a bucket the store was not opened with.
var ErrUnknownBucket = errors.New("store: unknown bucket")

// Watcher is implemented by stores that several processes share (etcd), where a transaction of
// another process can change a bucket at any time. A process that keeps a bucket's content in
// memory (the revoker's log) watches it to learn of such changes promptly; an embedded store that
// only its own process writes (bbolt) needs no Watcher.
type Watcher interface {
	// Watch returns a channel that receives a value after the bucket changes. Notifications
	// coalesce: one value may stand for many changes, so the receiver re-reads what it needs.
	// When the store cannot tell whether a change was missed (the watch failed and was resumed),
	// it notifies too, so a receiver that re-reads on every value never misses a change. The
	// channel is closed when ctx ends or the store is closed.
	Watch(ctx context.Context, bucket string) <-chan struct{}
}
