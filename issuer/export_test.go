package issuer

import "github.com/treaty-dev/treaty/store"

// ReplayEntries counts the entries of the replay cache and of its expiry index, for tests.
func ReplayEntries(i *Issuer) (entries, expiries int, err error) {
	err = i.cfg.Store.View(func(tx store.Tx) error {
		if err := tx.Scan(bucketReplay, nil, nil, func(_, _ []byte) (bool, error) { entries++; return true, nil }); err != nil {
			return err
		}
		return tx.Scan(bucketReplayExp, nil, nil, func(_, _ []byte) (bool, error) { expiries++; return true, nil })
	})
	return entries, expiries, err
}
