package notify_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// start runs n until the returned stop is called (or the test ends).
func start(t *testing.T, n *notify.Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFollowing waits until n follows the feed at position at least after (in any epoch when
// epoch is empty).
func waitFollowing(t *testing.T, n *notify.Notifier, epoch string, after uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, at, err := n.FeedPosition()
		if err != nil {
			t.Fatal(err)
		}
		if e != "" && (epoch == "" || e == epoch) && at >= after {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notifier follows %q at %d, want %q at %d or later", e, at, epoch, after)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSourcesResumeAfterRestart: kill-switch events and offboarding steps that happen while the
// notifier is down are notified once it runs again, from the positions it kept.
func TestSourcesResumeAfterRestart(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*day))
	e.partner(t, "beta", now.Add(365*day))
	src := pdptest.NewSource(e.rev, 20*time.Millisecond)
	st, err := store.OpenBolt(e.path, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(st, rcv.URL)
	cfg.Feed = src
	n := e.open(t, cfg)
	stop := start(t, n)
	waitFollowing(t, n, "", e.rev.Head())
	stop()
	st.Close()

	// While it is down: a kill switch on acme, and beta's offboarding.
	ctx := context.Background()
	pdptest.Revoke(t, e.rev, treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme")
	if _, _, err := e.reg.OffboardPartner(ctx, "beta", "relationship over", "alice"); err != nil {
		t.Fatal(err)
	}

	cfg.Store = storetest.OpenBoltAt(t, e.path, notify.Schema)
	n = e.open(t, cfg)
	start(t, n)
	got := map[string]string{}
	for _, r := range rcv.waitRequests(t, 3) {
		b := decode(t, r.body)
		got[b.Type+"/"+b.Details["target_id"]] = b.Partner.ID
	}
	for key, partner := range map[string]string{
		notify.TypeBlocked + "/acme":           "acme",
		notify.TypeOffboardingTerminated + "/": "beta",
		notify.TypeBlocked + "/beta":           "beta", // the offboarding's permanent block
	} {
		if got[key] != partner {
			t.Errorf("missing %s about %s; got %v", key, partner, got)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if len(rcv.requests()) != 3 {
		t.Errorf("%d notifications, want 3", len(rcv.requests()))
	}
}

// TestFeedReplaced: when the revoker's log is replaced (a new epoch), the notifier follows the
// new log from its head, without notifying its history again, and notifies what comes next.
func TestFeedReplaced(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*day))
	src := pdptest.NewSource(e.rev, 20*time.Millisecond)
	cfg := e.config(nil, rcv.URL)
	cfg.Feed = src
	n := e.open(t, cfg)
	start(t, n)
	waitFollowing(t, n, e.rev.Epoch(), e.rev.Head())

	// A new log whose history already blocks a partner: not news for the notifier.
	fresh, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pdptest.Publish(t, fresh, pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Partner("old", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd))
	pdptest.Revoke(t, fresh, treatyv1.TargetKind_TARGET_KIND_PARTNER, "old")
	src.Switch(fresh)
	waitFollowing(t, n, fresh.Epoch(), fresh.Head())

	pdptest.Revoke(t, fresh, treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme")
	b := decode(t, rcv.waitRequests(t, 1)[0].body)
	if b.Type != notify.TypeBlocked || b.Partner.ID != "acme" || b.Details["sequence"] != "4" {
		t.Errorf("notification %+v", b)
	}
	time.Sleep(200 * time.Millisecond)
	if len(rcv.requests()) != 1 {
		t.Errorf("%d notifications, want 1", len(rcv.requests()))
	}
}

// TestFeedCompacted: events compacted away while the notifier was down cannot be replayed; it
// says so in its log and follows on from the revoker's head.
func TestFeedCompacted(t *testing.T) {
	var mu sync.Mutex
	revNow := time.Now()
	revClock := func() time.Time { mu.Lock(); defer mu.Unlock(); return revNow }
	e := newEnv(t, revoker.Config{MaxCredentialTTL: time.Hour, Now: revClock, Credentials: creds{"jti-1": "acme", "jti-2": "acme"}})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*day))
	st, err := store.OpenBolt(e.path, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(st, rcv.URL)
	cfg.Feed = pdptest.NewSource(e.rev, 20*time.Millisecond)
	n := e.open(t, cfg)
	stop := start(t, n)
	waitFollowing(t, n, "", e.rev.Head())
	stop()
	st.Close()

	pdptest.Revoke(t, e.rev, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "jti-1")
	mu.Lock()
	revNow = revNow.Add(48 * time.Hour)
	mu.Unlock()
	pdptest.Revoke(t, e.rev, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "jti-2")
	if k, err := e.rev.Compact(context.Background()); err != nil || k == 0 {
		t.Fatalf("Compact = %d, %v", k, err)
	}

	cfg.Store = storetest.OpenBoltAt(t, e.path, notify.Schema)
	n = e.open(t, cfg)
	start(t, n)
	waitFollowing(t, n, "", e.rev.Head())
	pdptest.Revoke(t, e.rev, treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme")
	b := decode(t, rcv.waitRequests(t, 1)[0].body)
	if b.Type != notify.TypeBlocked {
		t.Errorf("first notification after the resync is %s, want %s (the compacted revocations are lost)", b.Type, notify.TypeBlocked)
	}
	if !strings.Contains(e.logs.String(), "compacted away") {
		t.Errorf("the loss is not logged:\n%s", e.logs.String())
	}
}
