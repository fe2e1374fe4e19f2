package ssf_test

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/ssf/ssftest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// retained is the feed of a revoker that compacted every event up to and including after: it
// answers a subscription from before that as the revoker does, with OUT_OF_RANGE. (The real
// revoker's compaction is being built in parallel; this stands in for it.)
type retained struct {
	feed.Source
	after uint64
}

func (r retained) Subscribe(ctx context.Context, after uint64) (feed.Stream, error) {
	if after < r.after {
		return nil, fail.OutOfRangef("events up to %d were compacted; resync from a snapshot", r.after)
	}
	return r.Source.Subscribe(ctx, after)
}

// TestCompactedFeed: a transmitter that comes back to a compacted feed loses nothing when its
// own position is still retained (even though the event before it is not), and otherwise moves
// to the revoker's snapshot and goes on from there.
func TestCompactedFeed(t *testing.T) {
	cases := []struct {
		name     string
		compact  func(position uint64) uint64 // how far the revoker compacted
		wantJTIs []string
	}{
		{"position retained", func(p uint64) uint64 { return p }, []string{"tok-2", "tok-3", "tok-4"}},
		{"position compacted", func(p uint64) uint64 { return p + 2 }, []string{"tok-4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := ssftest.NewFeed(t)
			st := storetest.OpenBolt(t, ssf.Schema)
			cfg := ssf.Config{Issuer: issuer, Source: f.Source, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond}
			first := ssftest.Start(t, st, cfg)
			waitPosition(t, first, f.Log.Head())
			stream, err := first.CreateStream(context.Background(), ssf.StreamRequest{})
			if err != nil {
				t.Fatal(err)
			}
			position := f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-1")
			polled(t, first, stream.StreamID, 1)
			first.Close()

			f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-2")
			f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-3")
			cfg.Source = retained{Source: f.Source, after: c.compact(position)}
			second := ssftest.Start(t, st, cfg)
			waitPosition(t, second, f.Log.Head())
			f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-4")
			got := polled(t, second, stream.StreamID, len(c.wantJTIs))
			seen := map[string]bool{}
			for _, jti := range got {
				seen[jti] = true
			}
			for _, want := range c.wantJTIs {
				if !seen[want] {
					t.Fatalf("got %v, want %v", got, c.wantJTIs)
				}
			}
		})
	}
}
