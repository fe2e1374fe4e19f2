package issuer

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
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

// Credential ids sort by issue time, and are opaque ids.
func TestCredentialIDsSortByTime(t *testing.T) {
	base := time.UnixMilli(1_800_000_000_000)
	prev := ""
	for _, d := range []time.Duration{0, time.Millisecond, 63 * time.Millisecond, time.Second, time.Hour, 1000 * time.Hour} {
		id, err := newCredentialID(base.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || id <= prev || fail.CheckOpaqueID("id", id) != nil {
			t.Fatalf("id %q at +%s: want 22 opaque characters sorting after %q", id, d, prev)
		}
		prev = id
	}
}

// A layout-2 store gains its workloads' last-used marks from the last-seen times on record.
func TestMigrateMarksWorkloadsLastUsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.db")
	v2 := store.Schema{Name: Schema.Name, Version: 2, Buckets: []string{bucketState, bucketCreds, bucketByOrder, bucketLastSeen}}
	old, err := store.OpenBolt(path, v2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	err = old.Update(func(tx store.Tx) error {
		for n, c := range []struct {
			id, workload string
			seen         time.Time
		}{{"jti-a", "w", now.Add(-time.Hour)}, {"jti-b", "w", now}, {"jti-c", "v", time.Time{}}} {
			rec := credentialRecord{ID: c.id, WorkloadID: c.workload, IntegrationID: "integ", PartnerID: "p", IssueTime: now, ExpireTime: now.Add(time.Hour), Order: uint64(n + 1)}
			if err := putJSON(tx, bucketCreds, []byte(c.id), &rec); err != nil {
				return err
			}
			if !c.seen.IsZero() {
				if err := tx.Put(bucketLastSeen, []byte(c.id), store.Uint64Key(uint64(c.seen.UnixNano()))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil || old.Close() != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBoltAt(t, path, Schema)
	var w, v time.Time
	st.View(func(tx store.Tx) error {
		w, v = workloadLastUsed(tx, "w"), workloadLastUsed(tx, "v")
		return nil
	})
	if !w.Equal(now) || !v.IsZero() {
		t.Fatalf("marks after migration: w %v, v %v; want w at %v, v none", w, v, now)
	}
}

// A layout-3 store's replay cache is stamped when opened: a live jti stays refused, an expired
// one is purged as before, and both buckets keep one entry per jti.
func TestMigrateStampsReplayEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.db")
	v3 := store.Schema{Name: Schema.Name, Version: 3, Buckets: []string{bucketState, bucketReplay, bucketReplayExp}}
	old, err := store.OpenBolt(path, v3)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	live, expired := scoped("w", []byte("jti-live")), scoped("w", []byte("jti-expired"))
	err = old.Update(func(tx store.Tx) error {
		for _, e := range []struct {
			key []byte
			exp time.Time
		}{{live, now.Add(time.Minute)}, {expired, now.Add(-time.Minute)}} {
			exp := store.Uint64Key(uint64(e.exp.UnixNano()))
			if err := tx.Put(bucketReplay, e.key, exp); err != nil {
				return err
			}
			if err := tx.Put(bucketReplayExp, append(exp, e.key...), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || old.Close() != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBoltAt(t, path, Schema)
	count := func() (entries, expiries int) {
		st.View(func(tx store.Tx) error {
			tx.Scan(bucketReplay, nil, nil, func(_, _ []byte) (bool, error) { entries++; return true, nil })
			return tx.Scan(bucketReplayExp, nil, nil, func(_, _ []byte) (bool, error) { expiries++; return true, nil })
		})
		return entries, expiries
	}
	if n, x := count(); n != 2 || x != 2 {
		t.Fatalf("after migration: %d entries, %d expiries; want 2, 2", n, x)
	}
	st.View(func(tx store.Tx) error {
		exp := tx.Get(bucketReplay, live)
		index := append(append(bytes.Clone(exp), make([]byte, 8)...), live...)
		if len(exp) != 8 || tx.Get(bucketReplayExp, index) == nil {
			t.Errorf("after migration the live entry's index key is not its expiry, zero, its key")
		}
		return nil
	})
	used := fail.Unauthenticatedf("already used")
	for _, c := range []struct {
		key  []byte
		want error
	}{{live, used}, {expired, nil}} {
		err := st.Update(func(tx store.Tx) error { return putReplay(tx, c.key, now.Add(time.Hour), now, used) })
		if err != c.want {
			t.Errorf("putReplay(%q) after migration = %v, want %v", c.key, err, c.want)
		}
	}
	// The expired entry was replaced; its old index entry, expired, was purged in the same
	// transaction, without the new entry.
	if n, x := count(); n != 2 || x != 2 {
		t.Fatalf("after reuse: %d entries, %d expiries; want 2, 2", n, x)
	}
	// Past the live entry's expiry, the next entry purges it.
	err = st.Update(func(tx store.Tx) error {
		return putReplay(tx, scoped("w", []byte("jti-next")), now.Add(3*time.Hour), now.Add(2*time.Minute), used)
	})
	if n, x := count(); err != nil || n != 2 || x != 2 {
		t.Fatalf("after purge: %d entries, %d expiries (%v); want 2, 2", n, x, err)
	}
}

// An expired layout-3 entry (written by a replica not yet upgraded that shares the store) is
// purged whole, and a purge never deletes an entry its index key does not name.
func TestPurgeLayout3Entries(t *testing.T) {
	st := storetest.OpenBolt(t, Schema)
	now := time.Now()
	old := scoped("w", []byte("jti-old"))
	// live's key is old's index key cut as a layout-4 one would be: it must survive old's purge.
	oldIndex := append(store.Uint64Key(uint64(now.Add(-time.Minute).UnixNano())), old...)
	live := oldIndex[replayIndexLen:]
	used := fail.Unauthenticatedf("already used")
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(bucketReplay, old, oldIndex[:8]); err != nil {
			return err
		}
		if err := tx.Put(bucketReplayExp, oldIndex, nil); err != nil {
			return err
		}
		return putReplay(tx, live, now.Add(time.Hour), now.Add(-2*time.Minute), used)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx store.Tx) error {
		return putReplay(tx, scoped("w", []byte("jti-next")), now.Add(time.Hour), now, used)
	})
	if err != nil {
		t.Fatal(err)
	}
	st.View(func(tx store.Tx) error {
		if tx.Get(bucketReplay, old) != nil || tx.Get(bucketReplayExp, oldIndex) != nil {
			t.Error("the expired layout-3 entry was not purged whole")
		}
		if tx.Get(bucketReplay, live) == nil {
			t.Error("purging the layout-3 entry deleted another, live one")
		}
		// Entries stay as layout 3 wrote them (key -> expiry), so a replica not yet upgraded
		// reads what an upgraded one records.
		if exp := tx.Get(bucketReplay, live); store.KeyUint64(exp) != uint64(now.Add(time.Hour).UnixNano()) {
			t.Errorf("entry = %x, want the expiry alone", exp)
		}
		return nil
	})
}
