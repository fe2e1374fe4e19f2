package storetest

import (
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/treaty-dev/treaty/store"
)

// ErrDiskFull is the error a full disk gives a write: what FailWrites injects when given nil.
var ErrDiskFull error = &fs.PathError{Op: "write", Path: "(injected fault)", Err: syscall.ENOSPC}

// FaultyStore wraps a store and refuses its writes on demand, as a full or failing disk would,
// so tests can drive a service through the fault with the real store underneath. A refused write
// runs inside the real store's transaction and fails from within it: its Put, Delete and Clear
// return the fault, and if fn carries on regardless, the transaction fails at its end as a commit
// would. Either way the real store rolls it back, and classifies the error as it would a real
// disk's (store.Bolt makes it fail.Unavailable). Reads are never affected.
type FaultyStore struct {
	store.Store
	mu      sync.Mutex
	err     error
	refused atomic.Int64
}

// Faulty wraps st; its writes succeed until FailWrites.
func Faulty(st store.Store) *FaultyStore { return &FaultyStore{Store: st} }

// FailWrites makes every write from now on fail with err (ErrDiskFull if nil), until Heal.
func (f *FaultyStore) FailWrites(err error) {
	if err == nil {
		err = ErrDiskFull
	}
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Heal lets writes succeed again.
func (f *FaultyStore) Heal() {
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
}

// Refused returns how many write transactions the fault has failed so far (a Batch call's fn
// may run, and fail, more than once).
func (f *FaultyStore) Refused() int64 { return f.refused.Load() }

func (f *FaultyStore) fault() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Update implements store.Store.
func (f *FaultyStore) Update(fn func(store.Tx) error) error {
	return f.Store.Update(func(tx store.Tx) error { return f.run(tx, fn) })
}

// Batch implements store.Store.
func (f *FaultyStore) Batch(fn func(store.Tx) error) error {
	return f.Store.Batch(func(tx store.Tx) error { return f.run(tx, fn) })
}

func (f *FaultyStore) run(tx store.Tx, fn func(store.Tx) error) error {
	ftx := &faultyTx{Tx: tx, f: f}
	err := fn(ftx)
	if err == nil {
		err = ftx.check() // the commit: fails if the disk went bad while fn ran
	}
	if ftx.failed {
		f.refused.Add(1)
	}
	return err
}

// faultyTx fails writes while the fault is set.
type faultyTx struct {
	store.Tx
	f      *FaultyStore
	failed bool
}

func (t *faultyTx) check() error {
	err := t.f.fault()
	if err != nil {
		t.failed = true
	}
	return err
}

func (t *faultyTx) Put(bucket string, key, value []byte) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.Tx.Put(bucket, key, value)
}

func (t *faultyTx) Delete(bucket string, key []byte) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.Tx.Delete(bucket, key)
}

func (t *faultyTx) Clear(bucket string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.Tx.Clear(bucket)
}
