package revoker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/store"
)

// newEpoch returns a fresh random epoch id.
func newEpoch() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Reepoch gives a restored log a new epoch, keeping its events and state. A log restored from a
// backup is older than what its subscribers have seen, and the sequences after its head will be
// reused by new events: the new epoch tells every subscriber that the log was replaced, so it keeps
// the revocations it holds and resyncs from a snapshot instead of trusting its position. Tokens
// issued against the old epoch are denied from then on; partners fetch new ones.
//
// Stop every replica of the log first. A replica left running on a shared store (etcd) refuses
// every append from then on (its commits read the epoch), and once it notices the new epoch
// (within a second) it says so in its log; but until it is restarted its readers keep the old
// epoch's state and events.
func Reepoch(st store.Store) (old, epoch string, err error) {
	epoch = newEpoch()
	err = st.Update(func(tx store.Tx) error {
		old = string(tx.Get(bucketLog, keyEpoch))
		if old == "" {
			return fmt.Errorf("the store holds no revocation log")
		}
		if err := tx.Put(bucketLog, keyEpoch, []byte(epoch)); err != nil {
			return err
		}
		return feed.SaveEpoch(tx, epoch)
	})
	if err != nil {
		return "", "", fmt.Errorf("give the restored revocation log a new epoch: %w", err)
	}
	return old, epoch, nil
}
