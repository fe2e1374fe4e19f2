package notify_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestPrune: settled notifications older than the retention leave the delivery log; pending ones
// stay however old, and a pruned dedupe key still deduplicates.
func TestPrune(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	ctx := context.Background()

	st, err := store.OpenBolt(e.path, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	n := e.open(t, e.config(st, ok.URL))
	stop := start(t, n)
	if _, _, err := n.Enqueue(ctx, notify.Event{Type: notify.TypeTest, Summary: "old", DedupeKey: "once"}); err != nil {
		t.Fatal(err)
	}
	waitDeliveries(t, n, notify.StateDelivered, 1)
	stop()
	st.Close()

	cfg := e.config(storetest.OpenBoltAt(t, e.path, notify.Schema), ok.URL, failing.URL)
	cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour // the failing endpoint's delivery stays pending
	n = e.open(t, cfg)
	start(t, n)
	pending, _, err := n.Enqueue(ctx, notify.Event{Type: notify.TypeTest, Summary: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	failing.waitRequests(t, 1)
	waitDeliveries(t, n, notify.StateDelivered, 2)

	if k, err := n.Prune(ctx); err != nil || k != 0 {
		t.Fatalf("Prune within the retention = %d, %v; want 0", k, err)
	}
	e.setClock(now.Add(notify.DefaultRetention + time.Hour))
	if k, err := n.Prune(ctx); err != nil || k != 1 {
		t.Fatalf("Prune = %d, %v; want 1 (the settled one)", k, err)
	}
	left, _, err := n.ListDeliveries(ctx, notify.DeliveryQuery{})
	if err != nil || len(left) != 2 || left[0].NotificationID != pending || left[1].NotificationID != pending {
		t.Fatalf("after pruning: %+v, %v; want the pending notification's two deliveries", left, err)
	}
	if _, added, err := n.Enqueue(ctx, notify.Event{Type: notify.TypeTest, Summary: "old", DedupeKey: "once"}); err != nil || added {
		t.Errorf("a pruned dedupe key: added %v, %v", added, err)
	}
}
