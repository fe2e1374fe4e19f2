package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// legacyRecord is an audit record as layout 1 stored it: no hashes.
type legacyRecord struct {
	Sequence uint64            `json:"sequence"`
	Time     string            `json:"time"`
	Actor    string            `json:"actor"`
	Action   string            `json:"action"`
	Target   string            `json:"target"`
	Reason   string            `json:"reason,omitempty"`
	After    map[string]string `json:"after,omitempty"`
}

func TestOpeningALayout1StoreChainsItsAuditTrail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	v1 := store.Schema{Name: registry.Schema.Name, Version: 1, Buckets: registry.Schema.Buckets}
	st, err := store.OpenBolt(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	legacy := []legacyRecord{
		{Sequence: 1, Time: "2026-01-02T03:04:05.123456789Z", Actor: "alice", Action: "partner.create", Target: "partner/old",
			After: map[string]string{"state": "active"}},
		{Sequence: 2, Time: "2026-01-03T00:00:00Z", Action: "partner.suspend", Target: "partner/old", Reason: "review"},
	}
	if err := st.Update(func(tx store.Tx) error {
		for _, rec := range legacy {
			raw, _ := json.Marshal(rec)
			if err := tx.Put(registry.AuditBucket, store.Uint64Key(rec.Sequence), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	e := newRevoker(t)
	e.node = startNode(t, path, e.pub) // migrates
	ctx := context.Background()
	e.mustPartner(t, "acme")
	recs, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("ListAudit = %d records, %v", len(recs), err)
	}
	prev := registry.AuditGenesis()
	for _, rec := range recs {
		if rec.Prev != prev || rec.Hash != specHash(t, prev, rec) {
			t.Errorf("record %d is not chained: %+v", rec.Sequence, rec)
		}
		prev = rec.Hash
	}
	if recs[0].Actor != "alice" || recs[0].Time.Nanosecond() != 123456789 || recs[1].Actor != registry.UnattributedActor || recs[1].Reason != "review" {
		t.Errorf("migrated records changed: %+v", recs[:2])
	}
	if v, err := e.reg.VerifyAudit(ctx, registry.AuditAnchor{}); err != nil || !v.Intact() || v.Records != 3 {
		t.Errorf("VerifyAudit = %+v, %v", v, err)
	}
}

func TestOpeningALayout1StoreWithAGapFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	st, err := store.OpenBolt(path, store.Schema{Name: registry.Schema.Name, Version: 1, Buckets: registry.Schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(legacyRecord{Sequence: 2, Time: "2026-01-03T00:00:00Z", Actor: "a", Action: "partner.create", Target: "partner/x"})
	if err := st.Update(func(tx store.Tx) error { return tx.Put(registry.AuditBucket, store.Uint64Key(2), raw) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err := store.OpenBolt(path, registry.Schema); err == nil {
		st.Close()
		t.Fatal("a layout 1 trail with a gap was chained over")
	}
}

// TestVerifyAuditAcrossPages checks a trail longer than one verification page (1000 records),
// with a break after the first page.
func TestVerifyAuditAcrossPages(t *testing.T) {
	st := storetest.OpenBolt(t, registry.Schema)
	const n = 2500
	prev := registry.AuditGenesis()
	if err := st.Update(func(tx store.Tx) error {
		for seq := uint64(1); seq <= n; seq++ {
			rec := registry.AuditRecord{Sequence: seq, Time: now, Actor: "alice", Action: "partner.create",
				Target: fmt.Sprintf("partner/p%d", seq), Prev: prev}
			rec.Hash = specHash(t, prev, rec)
			prev = rec.Hash
			raw, _ := json.Marshal(rec)
			if err := tx.Put(registry.AuditBucket, store.Uint64Key(seq), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := registry.VerifyAuditStore(ctx, st, registry.AuditAnchor{Sequence: n, Hash: prev})
	if err != nil || !v.Intact() || v.Records != n || v.HeadHash != prev {
		t.Fatalf("VerifyAuditStore = %+v, %v", v, err)
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Delete(registry.AuditBucket, store.Uint64Key(1500)) }); err != nil {
		t.Fatal(err)
	}
	v, err = registry.VerifyAuditStore(ctx, st, registry.AuditAnchor{})
	if err != nil || v.Broken == nil || v.Broken.Sequence != 1501 || v.Broken.Problem != registry.AuditGap || v.Records != 1499 {
		t.Fatalf("VerifyAuditStore after deleting 1500 = %+v (%v), %v", v, v.Broken, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := registry.VerifyAuditStore(cancelled, st, registry.AuditAnchor{}); err == nil {
		t.Error("VerifyAuditStore went on after its context ended")
	}
}
