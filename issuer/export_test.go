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

// ForgetPublication clears the recorded feed sequence of signing key kid in st, as if the process
// had crashed after the relay published the key but before the issuer recorded where.
func ForgetPublication(st store.Store, kid string) error {
	return st.Update(func(tx store.Tx) error {
		var rec keyRecord
		if _, err := getJSON(tx, bucketKeys, []byte(kid), &rec); err != nil {
			return err
		}
		rec.Published = 0
		return putJSON(tx, bucketKeys, []byte(kid), &rec)
	})
}
