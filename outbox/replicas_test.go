package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestRelaysShareOneStore: two replicas of a service, each with its own etcd client, store and
// relay on one prefix (two processes), write concurrently and publish into one revoker. Both
// relays publish whatever is queued, so a writer's entry is often published and dequeued by the
// other replica's relay: its Wait must still return, with the sequence the event has in the feed.
// The feed holds every entry once, in outbox order.
func TestRelaysShareOneStore(t *testing.T) {
	c := etcdtest.Start(t, 3)
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type replica struct {
		st    store.Store
		relay *outbox.Relay
	}
	var replicas [2]replica
	for i := range replicas {
		st, err := etcdstore.Open(c.Client(), "/treaty/svc", schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		replicas[i] = replica{st, outbox.NewRelay(st, log, slog.Default())}
		run(t, replicas[i].relay)
	}

	const workers, each = 6, 15 // per replica
	type published struct{ entry, seq uint64 }
	var mu sync.Mutex
	got := map[string]published{} // partner id -> its entry and the sequence Wait returned
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for i, rep := range replicas {
		for w := range workers {
			wg.Go(func() {
				for n := range each {
					id := fmt.Sprintf("p%d-%d-%d", i, w, n)
					entry, err := queue(rep.st, id)
					if err != nil {
						errs <- fmt.Errorf("replica %d: write %s: %w", i, id, err)
						return
					}
					// Generous, yet far below the test's minute: a waiter that is never told
					// fails here rather than by the test timing out.
					wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
					seq, err := rep.relay.Wait(wctx, entry)
					wcancel()
					if err != nil {
						errs <- fmt.Errorf("replica %d: Wait(%d) for %s: %w", i, entry, id, err)
						return
					}
					mu.Lock()
					got[id] = published{entry, seq}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	const total = 2 * workers * each
	evs, err := log.Read(0, 2*total)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != total {
		t.Fatalf("the feed holds %d events, want %d (one per write)", len(evs), total)
	}
	var lastEntry uint64
	for i, ev := range evs {
		id := ev.GetPartnerChanged().GetPartnerId()
		p, ok := got[id]
		switch {
		case ev.GetSequence() != uint64(i+1):
			t.Fatalf("event %d has sequence %d", i, ev.GetSequence())
		case !ok:
			t.Fatalf("event %d is partner %q, which no write published (or a duplicate)", ev.GetSequence(), id)
		case p.seq != ev.GetSequence():
			t.Fatalf("Wait returned %d for %s, but its event is at %d", p.seq, id, ev.GetSequence())
		case p.entry <= lastEntry:
			t.Fatalf("entry %d (%s) is at %d, after entry %d: not in outbox order", p.entry, id, ev.GetSequence(), lastEntry)
		}
		delete(got, id) // a second event for it fails above
		lastEntry = p.entry
	}
	for _, rep := range replicas {
		if n, err := rep.relay.Pending(); err != nil || n != 0 {
			t.Fatalf("pending = %d, %v; want 0", n, err)
		}
	}
}
