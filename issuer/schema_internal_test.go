package issuer

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// A layout-1 store gains the integration index of the credentials it holds when opened.
func TestMigrateIndexesIntegrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.db")
	v1 := store.Schema{Name: Schema.Name, Version: 1, Buckets: []string{bucketState, bucketCreds, bucketByOrder}}
	old, err := store.OpenBolt(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = old.Update(func(tx store.Tx) error {
		for n, id := range []string{"jti-a", "jti-b"} {
			rec := credentialRecord{ID: id, WorkloadID: "w", IntegrationID: "integ", PartnerID: "p", IssueTime: now, ExpireTime: now.Add(time.Hour), Order: uint64(n + 1)}
			if err := putJSON(tx, bucketCreds, []byte(id), &rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || old.Close() != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBoltAt(t, path, Schema)
	var got []string
	st.View(func(tx store.Tx) error {
		return tx.Scan(bucketByInteg, scoped("integ", nil), nil, func(_, jti []byte) (bool, error) {
			got = append(got, string(jti))
			return true, nil
		})
	})
	if len(got) != 2 || got[0] != "jti-b" || got[1] != "jti-a" {
		t.Fatalf("integration index after migration = %v, want [jti-b jti-a] (newest first)", got)
	}
}
