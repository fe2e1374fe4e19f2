package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// metaBucket holds the schema version of a store; every store has it.
const metaBucket = "meta"

var schemaKey = []byte("schema")

// Schema describes the layout a service keeps in a store: its buckets and the version of their
// key and value layout. Migrations[v] upgrades a store from version v to v+1 inside one
// transaction; Open runs the missing ones.
type Schema struct {
	// Name identifies the service, so one service's file is never opened as another's.
	Name string
	// Version is the current layout version, starting at 1.
	Version uint64
	// Buckets lists every bucket the service uses.
	Buckets []string
	// Migrations upgrade older layouts, indexed by the version they start from.
	Migrations map[uint64]func(Tx) error
	// Appended lists the buckets (of Buckets) whose new keys sort after the ones already there,
	// or after the ones already in a few key ranges: logs by sequence, indexes by time. bbolt
	// splits a full page at half by default, which leaves room for keys inserted in between; a
	// bucket that only grows at its end never fills that room, so its pages stay half empty and
	// each commit writes twice the pages it needs. The bbolt backend packs these buckets' pages
	// full instead (FillPercent 1.0); other backends may ignore it.
	Appended []string
}

// Upgrade brings a store whose layout is at version up to the schema's Version by running its
// migrations in tx, in order; a layout newer than this binary knows is refused. Every backend
// calls it when it opens a store.
func (s Schema) Upgrade(tx Tx, version uint64) error {
	if version > s.Version {
		return fmt.Errorf("layout version %d is newer than this binary understands (%d); upgrade treaty", version, s.Version)
	}
	for ; version < s.Version; version++ {
		m := s.Migrations[version]
		if m == nil {
			return fmt.Errorf("no migration from layout version %d", version)
		}
		if err := m(tx); err != nil {
			return fmt.Errorf("migrate layout %d to %d: %w", version, version+1, err)
		}
	}
	return nil
}

// Bolt is a Store backed by one bbolt file.
type Bolt struct {
	db      *bolt.DB
	buckets map[string]bool
	// packed holds Schema.Appended, the buckets written with FillPercent 1.0.
	packed map[string]bool
	// name (the schema's) and path say whose store a write error is about.
	name, path string

	// The group commit of Batch (batch.go): the calls waiting, and whether a leader commits.
	batchMu    sync.Mutex
	queue      []*batchCall
	committing bool
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the bbolt file at path with mode 0600, creates the schema's
// buckets and runs any migrations. It fails after a second if another process holds the file.
func OpenBolt(path string, schema Schema) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is another treaty process using this data folder?)", path, err)
	}
	b := &Bolt{db: db, buckets: map[string]bool{metaBucket: true}, name: schema.Name, path: path}
	for _, name := range schema.Buckets {
		b.buckets[name] = true
	}
	for _, name := range schema.Appended {
		if !b.buckets[name] {
			db.Close()
			return nil, fmt.Errorf("open %s: appended bucket %q is not one of the schema's buckets", path, name)
		}
		if b.packed == nil {
			b.packed = map[string]bool{}
		}
		b.packed[name] = true
	}
	if err := b.migrate(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return b, nil
}

func (b *Bolt) migrate(schema Schema) error {
	return b.db.Update(func(btx *bolt.Tx) error {
		for name := range b.buckets {
			if _, err := btx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		meta := btx.Bucket([]byte(metaBucket))
		nameKey := []byte("name")
		if got := meta.Get(nameKey); got != nil && string(got) != schema.Name {
			return fmt.Errorf("the file belongs to the %q service, not %q", got, schema.Name)
		}
		if err := meta.Put(nameKey, []byte(schema.Name)); err != nil {
			return err
		}
		version := schema.Version
		if raw := meta.Get(schemaKey); raw != nil {
			version = binary.BigEndian.Uint64(raw)
		}
		if err := schema.Upgrade(b.tx(btx), version); err != nil {
			return err
		}
		return meta.Put(schemaKey, binary.BigEndian.AppendUint64(nil, schema.Version))
	})
}

// View implements Store.
func (b *Bolt) View(fn func(Tx) error) error {
	return b.db.View(func(btx *bolt.Tx) error { return fn(b.tx(btx)) })
}

// Update implements Store. bbolt fsyncs the file on commit, so a nil return means durable. A
// write the disk refuses returns a fail.Unavailable error (see writeError).
func (b *Bolt) Update(fn func(Tx) error) error {
	committing := false
	err := b.db.Update(func(btx *bolt.Tx) error {
		err := fn(b.tx(btx))
		committing = err == nil
		return err
	})
	return b.writeError(err, committing)
}

// Backup implements Store: a read transaction sees one consistent version of every page, so the
// copy is exact without pausing writers.
func (b *Bolt) Backup(w io.Writer) (int64, error) {
	var n int64
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Close implements Store.
func (b *Bolt) Close() error { return b.db.Close() }

// Check verifies the file's page structure, as bbolt's consistency check does, and returns the
// first problem found.
func (b *Bolt) Check() error {
	return b.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain, so the checker goroutine ends
			if first == nil {
				first = err
			}
		}
		return first
	})
}

type boltTx struct {
	tx      *bolt.Tx
	buckets map[string]bool
	packed  map[string]bool
}

// tx wraps a bbolt transaction in the store's view of its buckets.
func (b *Bolt) tx(btx *bolt.Tx) *boltTx {
	return &boltTx{tx: btx, buckets: b.buckets, packed: b.packed}
}

func (t *boltTx) bucket(name string) (*bolt.Bucket, error) {
	if !t.buckets[name] {
		return nil, fmt.Errorf("%w %q", ErrUnknownBucket, name)
	}
	bk := t.tx.Bucket([]byte(name))
	if t.packed[name] {
		// A writable transaction hands out the same *bolt.Bucket for a name until it ends, and
		// its pages are split when it commits, with this setting.
		bk.FillPercent = 1.0
	}
	return bk, nil
}

func (t *boltTx) Get(bucket string, key []byte) []byte {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	return clone(bk.Get(key))
}

func (t *boltTx) Put(bucket string, key, value []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Put(key, value)
}

func (t *boltTx) Delete(bucket string, key []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete(key)
}

func (t *boltTx) Scan(bucket string, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	seek := prefix
	if bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	for k, v := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (t *boltTx) Last(bucket string) (key, value []byte) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil, nil
	}
	k, v := bk.Cursor().Last()
	return clone(k), clone(v)
}

func (t *boltTx) Clear(bucket string) error {
	if _, err := t.bucket(bucket); err != nil {
		return err
	}
	if err := t.tx.DeleteBucket([]byte(bucket)); err != nil {
		return err
	}
	_, err := t.tx.CreateBucket([]byte(bucket))
	return err
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

// Uint64Key encodes n big-endian, so numeric keys sort in numeric order.
func Uint64Key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// KeyUint64 decodes a key written by Uint64Key; it returns 0 for a key of the wrong length.
func KeyUint64(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
