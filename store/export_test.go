package store

import bolt "go.etcd.io/bbolt"

// CommittedTxID returns the id of the last committed write transaction, for tests that count
// commits.
func CommittedTxID(b *Bolt) uint64 {
	var id int
	b.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return uint64(id)
}

// BatchQueue returns how many Batch calls wait for the commit in flight.
func BatchQueue(b *Bolt) int {
	b.batchMu.Lock()
	defer b.batchMu.Unlock()
	return len(b.queue)
}

// LeafPages returns how many leaf pages bucket's B-tree holds.
func LeafPages(b *Bolt, bucket string) int {
	var n int
	b.db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte(bucket)).Stats().LeafPageN; return nil })
	return n
}
