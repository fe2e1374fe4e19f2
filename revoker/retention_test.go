package revoker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCompaction(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: now}
	cfg := revoker.Config{MaxCredentialTTL: time.Hour, RetentionMargin: 10 * time.Minute, Now: clk.Now}
	path := filepath.Join(t.TempDir(), "revoker.db")
	st, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(ctx, onboardingEntries(t, "acme")); err != nil { // 1-4
		t.Fatal(err)
	}
	withID := func(r revoker.Request, id string) revoker.Request { r.RequestID = id; return r }
	mustRevoke := func(r revoker.Request, want uint64) {
		t.Helper()
		if out, err := l.Revoke(ctx, r); err != nil || out.Sequence != want {
			t.Fatalf("revoke %s: %+v, %v; want sequence %d", r.Target, out, err, want)
		}
	}
	mustRevoke(withID(req(credentialK, "jti-a"), "ra"), 5) // denylisted until now+1h
	mustRevoke(req(partnerK, "acme"), 6)

	if n, err := l.Compact(ctx); err != nil || n != 0 || l.RetainedAfter() != 0 {
		t.Fatalf("nothing is old yet, compacted %d (%v), retained after %d", n, err, l.RetainedAfter())
	}

	clk.Advance(2 * time.Hour)
	mustRevoke(withID(req(credentialK, "jti-b"), "rb"), 7)
	mustRevoke(req(credentialK, "jti-c"), 8)
	// The retention is 1h10m: events 1-6 (two hours old) go, 7 and 8 stay.
	if n, err := l.Compact(ctx); err != nil || n != 6 {
		t.Fatalf("compacted %d (%v), want 6", n, err)
	}
	check := func(l *revoker.Log) {
		t.Helper()
		if l.RetainedAfter() != 6 || l.Head() != 8 {
			t.Fatalf("retained after %d, head %d; want 6, 8", l.RetainedAfter(), l.Head())
		}
		for _, after := range []uint64{0, 5} {
			if _, err := l.Read(after, 10); fail.KindOf(err) != fail.OutOfRange {
				t.Fatalf("read after %d: %v, want out of range", after, err)
			}
		}
		evs, err := l.Read(6, 10)
		if err != nil || len(evs) != 2 || evs[0].GetSequence() != 7 {
			t.Fatalf("read after 6: %d events, %v", len(evs), err)
		}
		// What the compacted events did is in the state; the expired denylisting is forgotten.
		s := l.State()
		if ctl, _ := s.Control(partnerK, "acme"); ctl.Block == nil || ctl.Block.Sequence != 6 {
			t.Fatalf("the block of a compacted event is gone: %+v", ctl)
		}
		if _, ok := s.Integration("acme-api"); !ok {
			t.Fatal("the integration of a compacted event is gone")
		}
		if _, ok := s.RevokedCredential("jti-a"); ok {
			t.Fatal("an expired denylisting was kept")
		}
		if _, ok := s.RevokedCredential("jti-b"); !ok {
			t.Fatal("a live denylisting was forgotten")
		}
	}
	check(l)

	// Durable: a reopened log knows its retained boundary.
	st.Close()
	l = openLog(t, path, cfg)
	check(l)

	// A retained request id still answers; a compacted one is gone with its event, and the late
	// request is judged against the state like a new one.
	if out, err := l.Revoke(ctx, withID(req(credentialK, "jti-b"), "rb")); err != nil || out.Sequence != 7 || !out.AlreadyApplied {
		t.Fatalf("retry of a retained request: %+v, %v", out, err)
	}
	if out, err := l.Revoke(ctx, withID(req(partnerK, "acme"), "ra")); err != nil || out.Sequence != 6 || !out.AlreadyApplied {
		t.Fatalf("a compacted request id reused: %+v, %v", out, err)
	}

	// Long after, everything but the newest event goes; the head stays readable.
	clk.Advance(24 * time.Hour)
	if n, err := l.Compact(ctx); err != nil || n != 1 || l.RetainedAfter() != 7 {
		t.Fatalf("compacted %d (%v), retained after %d; want 1, 7", n, err, l.RetainedAfter())
	}
	if evs, err := l.Read(7, 10); err != nil || len(evs) != 1 || evs[0].GetSequence() != 8 {
		t.Fatalf("read the head: %v, %v", evs, err)
	}
	mustRevoke(req(credentialK, "jti-d"), 9)
	if evs, err := l.Read(7, 10); err != nil || len(evs) != 2 {
		t.Fatalf("read after compaction and an append: %d events, %v", len(evs), err)
	}
}

// TestCompactionInChunksAndFromTheStore: compaction deletes more than one chunk, and a reader
// that falls behind the in-memory window reads from the store, where compaction is seen the same
// way.
func TestCompactionInChunksAndFromTheStore(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: now}
	cfg := revoker.Config{MaxCredentialTTL: time.Hour, RetentionMargin: time.Minute, Now: clk.Now}
	path := filepath.Join(t.TempDir(), "revoker.db")
	st, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // more than one compaction chunk
	for b := range n / 1000 {
		entries := make([]*treatyv1.PublishEntry, 1000)
		for i := range entries {
			id := fmt.Sprintf("p%d-%d", b, i)
			entries[i] = entry(id, partnerEv(id, treatyv1.PartnerState_PARTNER_STATE_ACTIVE))
		}
		if _, err := l.Publish(ctx, entries); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	l = openLog(t, path, cfg) // nothing in memory: reads go to the store
	clk.Advance(3 * time.Hour)
	if _, err := l.Revoke(ctx, req(credentialK, "fresh")); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Compact(ctx); err != nil || got != n {
		t.Fatalf("compacted %d (%v), want %d", got, err, n)
	}
	if _, err := l.Read(n-1, 10); fail.KindOf(err) != fail.OutOfRange {
		t.Fatalf("read below the retained boundary: %v", err)
	}
	if evs, err := l.Read(n, 10); err != nil || len(evs) != 1 || evs[0].GetCredentialRevoked().GetJti() != "fresh" {
		t.Fatalf("read after the boundary: %v, %v", evs, err)
	}
	if partners, _, _, _, _ := l.State().Counts(); partners != n {
		t.Fatalf("%d partners in the state after compaction, want %d", partners, n)
	}
}

// TestRunCompaction compacts on its own and stops with its context.
func TestRunCompaction(t *testing.T) {
	clk := &clock{t: now}
	l := openLog(t, filepath.Join(t.TempDir(), "revoker.db"), revoker.Config{
		MaxCredentialTTL: time.Hour, RetentionMargin: time.Minute, CompactEvery: 10 * time.Millisecond, Now: clk.Now})
	for _, jti := range []string{"a", "b"} {
		if _, err := l.Revoke(context.Background(), req(credentialK, jti)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Hour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.RunCompaction(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for l.RetainedAfter() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("RunCompaction did not compact")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
