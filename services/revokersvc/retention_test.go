package revokersvc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestSubscribeBehindRetention: a subscriber asking for compacted events gets an OUT_OF_RANGE
// answer, which the Go source turns into fail.OutOfRange for its follower to resync.
func TestSubscribeBehindRetention(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{MaxCredentialTTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	revoke := func(jti string) {
		if _, err := log.Revoke(ctx, revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: jti, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	revoke("a")
	revoke("b")
	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	revoke("c")
	if n, err := log.Compact(ctx); err != nil || n != 2 {
		t.Fatalf("compacted %d, %v", n, err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond})
	t.Cleanup(svc.Close)
	src := revokersvc.NewSource(grpctest.Serve(t, svc.Register))

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := src.Subscribe(sctx, 1)
	if err == nil {
		for {
			if _, err = stream.Recv(); err != nil {
				break
			}
		}
	}
	if fail.KindOf(err) != fail.OutOfRange {
		t.Fatalf("subscribing after a compacted sequence: %v, want out of range", err)
	}
	if n := svc.SubscriberStats().OutOfRange; n != 1 {
		t.Errorf("SubscriberStats().OutOfRange = %d, want 1", n)
	}
	// From the retained boundary on, the log replays.
	stream, err = src.Subscribe(sctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != 3 {
				t.Fatalf("first event %d, want 3", ev.GetSequence())
			}
			break
		}
	}
}
