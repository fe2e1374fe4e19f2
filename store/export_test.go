package store

import bolt "go.etcd.io/bbolt"

// CommittedTxID returns the id of the last committed write transaction, for tests that count
// commits.
func CommittedTxID(b *Bolt) uint64 {
	var id int
	b.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return uint64(id)
}
