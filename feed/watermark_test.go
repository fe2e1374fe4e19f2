package feed_test

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func globalWatermark(below uint64) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_GlobalWatermark{GlobalWatermark: &treatyv1.GlobalWatermark{BelowSequence: below}}}
}

// TestGlobalWatermarkOnlyRises: the break-glass watermark takes the highest value any event set,
// remembers which event set it, and survives Save/Load and Proto/FromProto.
func TestGlobalWatermarkOnlyRises(t *testing.T) {
	s := onboarded(t) // sequence 4
	if s.GlobalWatermark() != 0 {
		t.Fatalf("a new feed has watermark %d", s.GlobalWatermark())
	}
	s = apply(t, s, globalWatermark(5)) // sequence 5
	s = apply(t, s, globalWatermark(3)) // lower: ignored
	s = apply(t, s, globalWatermark(5)) // equal: ignored
	if s.GlobalWatermark() != 5 || s.GlobalWatermarkSequence() != 5 {
		t.Fatalf("watermark %d set at %d, want 5 at 5", s.GlobalWatermark(), s.GlobalWatermarkSequence())
	}
	s = apply(t, s, globalWatermark(8)) // sequence 8
	if s.GlobalWatermark() != 8 || s.GlobalWatermarkSequence() != 8 {
		t.Fatalf("watermark %d set at %d, want 8 at 8", s.GlobalWatermark(), s.GlobalWatermarkSequence())
	}

	st := storetest.OpenBolt(t, store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets})
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	var loaded *feed.State
	if err := st.View(func(tx store.Tx) (err error) { loaded, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if loaded.GlobalWatermark() != 8 || loaded.GlobalWatermarkSequence() != 8 {
		t.Fatalf("loaded watermark %d set at %d", loaded.GlobalWatermark(), loaded.GlobalWatermarkSequence())
	}
	if p := s.Proto(); p.GetGlobalWatermark() != 8 || feed.FromProto(p).GlobalWatermark() != 8 {
		t.Fatalf("proto carries watermark %d", p.GetGlobalWatermark())
	}
	if _, target := feed.Describe(globalWatermark(1)); target != "all" {
		t.Fatalf("Describe names %q", target)
	}
	if err := feed.CheckChange(globalWatermark(0)); err == nil {
		t.Fatal("a zero watermark passed CheckChange")
	}
}

// TestForgetExpired drops denylist entries that ended before the cutoff, and the saved state
// drops them too.
func TestForgetExpired(t *testing.T) {
	cut := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	s := apply(t, onboarded(t), credRevoked("old", cut.Add(-time.Second)), credRevoked("new", cut.Add(time.Second)))
	st := storetest.OpenBolt(t, store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets})
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	e := s.Edit()
	if n := e.ForgetExpired(cut, 10); n != 1 {
		t.Fatalf("forgot %d, want 1", n)
	}
	if err := st.Update(e.Changes().Save); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.RevokedCredential("old"); !ok {
		t.Fatal("the old state changed")
	}
	var loaded *feed.State
	if err := st.View(func(tx store.Tx) (err error) { loaded, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	for _, got := range []*feed.State{e.State(), loaded} {
		_, old := got.RevokedCredential("old")
		_, kept := got.RevokedCredential("new")
		if old || !kept {
			t.Fatalf("after forgetting: old %v, new %v", old, kept)
		}
		if _, _, _, _, n := got.Counts(); n != 1 {
			t.Fatalf("%d revoked credentials left", n)
		}
	}
}
