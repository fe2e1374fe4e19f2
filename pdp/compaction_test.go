package pdp_test

import (
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestResyncAfterCompaction: a PDP that was away for longer than the revoker's retention finds the
// events after what it applied compacted, resyncs from a snapshot of the same log, and takes it as
// it is: a block it saw, lifted in the compacted part, stays lifted.
func TestResyncAfterCompaction(t *testing.T) {
	var mu sync.Mutex
	revokerNow := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return revokerNow }
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{MaxCredentialTTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: log, key: pdptest.NewKey(t, "k1")}
	onboard(t, e.log, e.key)
	e.src = pdptest.NewSource(e.log, heartbeat)
	e.feed = &wrapSource{Source: e.src}
	e.store = storetest.OpenBolt(t, pdp.Schema)
	e.pdp = pdptest.Start(t, pdp.Config{Store: e.store, Source: e.feed, Logger: testLogger(t)})
	pdptest.WaitReady(t, e.pdp)

	waitApplied(t, e.pdp, pdptest.Revoke(t, e.log, partnerK, "acme"))
	e.src.Switch(nil) // the PDP is cut off
	restored := pdptest.Restore(t, e.log, partnerK, "acme")
	mu.Lock()
	revokerNow = revokerNow.Add(48 * time.Hour)
	mu.Unlock()
	pdptest.Revoke(t, e.log, credentialK, "some-jti")
	if _, err := e.log.Compact(t.Context()); err != nil || e.log.RetainedAfter() <= e.pdp.Applied() {
		t.Fatalf("compaction left the log retained after %d, the PDP applied %d (%v)", e.log.RetainedAfter(), e.pdp.Applied(), err)
	}

	e.src.Switch(e.log)
	waitApplied(t, e.pdp, e.log.Head())
	pdptest.WaitReady(t, e.pdp)
	if n := e.feed.snapshotCalls(); n != 1 {
		t.Errorf("%d snapshots fetched, want 1", n)
	}
	if got := reason(t, e.check(t, e.token(t, nil), "read", "api")); got != pdp.ReasonGranted {
		t.Errorf("a token minted after the restore at %d: %s, want %s", restored, got, pdp.ReasonGranted)
	}
	sameState(t, e.log.State(), cached(t, e.store))
}
