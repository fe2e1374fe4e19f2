package issuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// TestInventoryFollowsRevocations: a credential revoked in the feed is marked in the inventory
// once the issuer has applied the revocation's sequence; it no longer counts as live, a live-only
// listing drops it, and its record carries the revocation's sequence. Revocations made while the
// issuer was down are caught from the snapshot at the next start.
func TestInventoryFollowsRevocations(t *testing.T) {
	e := newEnv(t)
	e.cfg.Feed = revokersvc.NewSource(e.world.Conn())
	e.reopen()
	ctx := context.Background()

	a, b, c := e.issue(e.request()).Credential, e.issue(e.request()).Credential, e.issue(e.request()).Credential
	countLive := func() uint64 {
		t.Helper()
		n, _, err := e.iss.CountLive(issuer.LiveQuery{PartnerID: partner})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countLive(); n != 3 {
		t.Fatalf("CountLive = %d before any revocation, want 3", n)
	}

	seq := e.world.Revoke(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, a.ID)
	applied, err := e.iss.WaitApplied(ctx, seq)
	if err != nil || applied < seq {
		t.Fatalf("WaitApplied(%d) = %d, %v", seq, applied, err)
	}
	if n := countLive(); n != 2 {
		t.Fatalf("CountLive = %d after revoking one of three, want 2", n)
	}
	got, err := e.iss.Credential(a.ID)
	if err != nil || got.RevokedSequence != seq {
		t.Fatalf("Credential(%s).RevokedSequence = %d, %v; want %d", a.ID, got.RevokedSequence, err, seq)
	}
	live, _, err := e.iss.ListCredentials(issuer.Filter{PartnerID: partner, LiveOnly: true}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0].ID != c.ID || live[1].ID != b.ID {
		t.Fatalf("live listing = %v, want %s and %s", ids(live), c.ID, b.ID)
	}
	expired, _, err := e.iss.ListCredentials(issuer.Filter{PartnerID: partner, ExpiredOnly: true}, 0, "")
	if err != nil || len(expired) != 0 {
		t.Fatalf("expired listing = %v, %v; a revoked credential has not expired", ids(expired), err)
	}

	// Revoked while the issuer is down: the snapshot at the next start marks it.
	e.stop()
	seq = e.world.Revoke(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, b.ID)
	e.start(true)
	if _, err := e.iss.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if n := countLive(); n != 1 {
		t.Fatalf("CountLive = %d after a revocation while down, want 1", n)
	}
	counts, err := e.iss.CountLiveByPartner()
	if err != nil || len(counts) != 1 || counts[0].Live != 1 {
		t.Fatalf("CountLiveByPartner = %v, %v; want %s: 1", counts, err, partner)
	}
}

// TestWaitAppliedUnavailable: a sequence the feed never reaches, and an issuer that does not
// follow the feed, are Unavailable, not a wrong count.
func TestWaitAppliedUnavailable(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := e.iss.WaitApplied(ctx, 1); fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("WaitApplied without a feed: %v, want Unavailable", err)
	}
	if _, err := e.iss.WaitApplied(ctx, 0); err != nil {
		t.Fatalf("WaitApplied(0): %v", err)
	}
	e.cfg.Feed = revokersvc.NewSource(e.world.Conn())
	e.reopen()
	if _, err := e.iss.WaitApplied(ctx, e.world.Head()+1000); fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("WaitApplied beyond the head: %v, want Unavailable", err)
	}
}
