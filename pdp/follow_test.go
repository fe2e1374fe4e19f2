package pdp_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

// cached loads the state the PDP keeps in st.
func cached(t *testing.T, st store.Store) *feed.State {
	t.Helper()
	var s *feed.State
	if err := st.View(func(tx store.Tx) (err error) { s, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return s
}

// sameState compares two states as their protos, in id order.
func sameState(t *testing.T, want, got *feed.State) {
	t.Helper()
	opts := []cmp.Option{
		protocmp.Transform(),
		protocmp.SortRepeated(func(a, b *treatyv1.PartnerRecord) bool {
			return a.GetPartner().GetPartnerId() < b.GetPartner().GetPartnerId()
		}),
		protocmp.SortRepeated(func(a, b *treatyv1.IntegrationRecord) bool {
			return a.GetIntegration().GetIntegrationId() < b.GetIntegration().GetIntegrationId()
		}),
		protocmp.SortRepeated(func(a, b *treatyv1.WorkloadRecord) bool {
			return a.GetWorkload().GetWorkloadId() < b.GetWorkload().GetWorkloadId()
		}),
		protocmp.SortRepeated(func(a, b *treatyv1.SigningKeyRecord) bool { return a.GetKey().GetKid() < b.GetKey().GetKid() }),
		protocmp.SortRepeated(func(a, b *treatyv1.RevokedCredential) bool { return a.GetJti() < b.GetJti() }),
	}
	if diff := cmp.Diff(want.Proto(), got.Proto(), opts...); diff != "" {
		t.Errorf("state mismatch (-want +got):\n%s", diff)
	}
}

// waitApplied waits until the PDP has applied seq, through a decision's min_sequence.
func waitApplied(t *testing.T, p *pdp.PDP, seq uint64) {
	t.Helper()
	if _, err := p.CheckIssuance(context.Background(), pdp.IssuanceRequest{MinSequence: seq}); err != nil {
		t.Fatalf("sequence %d not applied: %v", seq, err)
	}
}

// churn appends one of every kind of event to e's log and returns the head.
func churn(t *testing.T, e *env) uint64 {
	pdptest.Publish(t, e.log,
		pdptest.Partner("globex", partnerActive, pdptest.ContractEnd),
		pdptest.Integration("globex-api", "globex", integrationActive, scopes, audiences),
		pdptest.Workload("globex-bot", "globex-api", "globex", workloadActive),
		pdptest.NewKey(t, "k2").Published(t),
	)
	pdptest.Revoke(t, e.log, partnerK, "globex")
	pdptest.Restore(t, e.log, partnerK, "globex")
	pdptest.Revoke(t, e.log, workloadK, "acme-bot")
	pdptest.Revoke(t, e.log, credentialK, "jti-1")
	return pdptest.Revoke(t, e.log, keyK, "k2")
}

func TestFollowerAppliesAndCachesTheFeed(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	head := churn(t, e)
	waitApplied(t, e.pdp, head)
	if e.pdp.Applied() != head {
		t.Fatalf("applied %d, want %d", e.pdp.Applied(), head)
	}
	sameState(t, e.log.State(), cached(t, e.store))
}

func TestFollowerReconnectsAfterAGap(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	dropped := false
	e.feed.setFilter(func(m *treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse {
		if m.GetEvent() != nil && !dropped {
			dropped = true // lose the first event once: the next one is a gap
			return nil
		}
		return m
	})
	head := churn(t, e)
	waitApplied(t, e.pdp, head)
	sameState(t, e.log.State(), cached(t, e.store))
	if subs := e.feed.subscriptions(); len(subs) < 2 {
		t.Errorf("subscriptions after %v, want a resubscription after the gap", subs)
	}
}

func TestRestartResumesFromTheCache(t *testing.T) {
	log, key := newLog(t), pdptest.NewKey(t, "k1")
	onboard(t, log, key)
	src := pdptest.NewSource(log, heartbeat)
	path := filepath.Join(t.TempDir(), "pdp.db")

	// First run: catch up, stop, close the cache.
	st, err := store.OpenBolt(path, pdp.Schema)
	if err != nil {
		t.Fatal(err)
	}
	first, err := pdp.New(pdp.Config{Store: st, Source: src, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- first.Run(ctx) }()
	pdptest.WaitReady(t, first)
	applied := first.Applied()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// While it is down the feed moves on, and when it restarts the revoker is unreachable.
	c := pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", log.Epoch(), log.Head())
	tok := key.Mint(t, c)
	revokedAt := pdptest.Revoke(t, log, credentialK, c.ID)
	src.Switch(nil)

	w := &wrapSource{Source: src}
	second := pdptest.Start(t, pdp.Config{Store: storetest.OpenBoltAt(t, path, pdp.Schema), Source: w, Logger: testLogger(t)})
	if second.Applied() != applied {
		t.Fatalf("restarted at %d, want the cached %d", second.Applied(), applied)
	}
	d, err := second.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got := reason(t, d); got != pdp.ReasonSyncing || d.Sequence != applied {
		t.Fatalf("before catching up: %s at %d, want %s at %d", got, d.Sequence, pdp.ReasonSyncing, applied)
	}

	src.Switch(log)
	pdptest.WaitReady(t, second)
	if subs := w.subscriptions(); len(subs) == 0 || subs[0] != applied {
		t.Errorf("subscribed after %v, want after the cached sequence %d first", subs, applied)
	}
	d, err = second.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api", MinSequence: revokedAt})
	if err != nil {
		t.Fatal(err)
	}
	if got := reason(t, d); got != pdp.ReasonRevoked {
		t.Errorf("after catching up: %s, want %s", got, pdp.ReasonRevoked)
	}
}

func TestMinSequenceReadsYourRevocation(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	check := func(tok string, seq uint64) <-chan pdp.Decision {
		out := make(chan pdp.Decision, 1)
		go func() {
			d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api", MinSequence: seq})
			if err != nil {
				t.Errorf("Check: %v", err)
			}
			out <- d
		}()
		return out
	}
	await := func(ch <-chan pdp.Decision) pdp.Decision {
		select {
		case d := <-ch:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no decision after 10 s")
		}
		return pdp.Decision{}
	}

	// Live: the revocation is applied while (or before) the check waits for it.
	c := e.claims()
	seq := pdptest.Revoke(t, e.log, credentialK, c.ID)
	if d := await(check(e.key.Mint(t, c), seq)); reason(t, d) != pdp.ReasonRevoked || d.Sequence < seq {
		t.Errorf("live: %v at %d, want %s at %d or later", d.Reasons, d.Sequence, pdp.ReasonRevoked, seq)
	}

	// With the revoker out of reach the check must wait, and answer once the PDP is back.
	e.src.Switch(nil)
	c = e.claims()
	seq = pdptest.Revoke(t, e.log, credentialK, c.ID)
	pending := check(e.key.Mint(t, c), seq)
	select {
	case d := <-pending:
		t.Fatalf("decided %v at %d before sequence %d could be applied", d.Reasons, d.Sequence, seq)
	case <-time.After(100 * time.Millisecond):
	}
	e.src.Switch(e.log)
	if d := await(pending); reason(t, d) != pdp.ReasonRevoked || d.Sequence < seq {
		t.Errorf("after reconnecting: %v at %d, want %s at %d or later", d.Reasons, d.Sequence, pdp.ReasonRevoked, seq)
	}
}

func TestMinSequenceBeyondTheHeadIsUnavailable(t *testing.T) {
	e := newEnv(t, pdp.Config{MaxWait: 300 * time.Millisecond})
	beyond := e.log.Head() + 100
	_, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: e.token(t, nil), Action: "read", Resource: "api", MinSequence: beyond})
	if fail.KindOf(err) != fail.Unavailable || !strings.Contains(err.Error(), "min_sequence") {
		t.Errorf("Check beyond the head: %v, want an Unavailable error naming min_sequence", err)
	}
	// The caller's deadline bounds the wait too.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	slow := newEnv(t, pdp.Config{MaxWait: time.Hour})
	_, err = slow.pdp.CheckIssuance(ctx, pdp.IssuanceRequest{WorkloadID: "acme-bot", MinSequence: beyond})
	if fail.KindOf(err) != fail.Unavailable {
		t.Errorf("CheckIssuance beyond the head: %v, want Unavailable", err)
	}
}

func TestStaleWhenTheSourceGoesAway(t *testing.T) {
	e := newEnv(t, pdp.Config{StalenessBound: 300 * time.Millisecond})
	tok := e.token(t, nil)
	decide := func() string {
		d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
		if err != nil {
			t.Fatal(err)
		}
		return reason(t, d)
	}

	e.src.Switch(nil) // the revoker is down: subscriptions fail
	waitStatus(t, e.pdp, pdp.StatusStale)
	if got := decide(); got != pdp.ReasonStale {
		t.Errorf("revoker down: %s, want %s", got, pdp.ReasonStale)
	}
	e.src.Switch(e.log)
	waitStatus(t, e.pdp, pdp.StatusReady)
	if got := decide(); got != pdp.ReasonGranted {
		t.Errorf("revoker back: %s, want %s", got, pdp.ReasonGranted)
	}

	e.feed.mute.Store(true) // the connection hangs: no heartbeat, no error
	waitStatus(t, e.pdp, pdp.StatusStale)
	if got := decide(); got != pdp.ReasonStale {
		t.Errorf("stream silent: %s, want %s", got, pdp.ReasonStale)
	}
	e.feed.mute.Store(false)
	waitStatus(t, e.pdp, pdp.StatusReady)

	// Heartbeats flow but events do not: the PDP never reaches the announced head.
	e.feed.setFilter(func(m *treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse {
		if m.GetEvent() != nil {
			return nil
		}
		return m
	})
	seq := pdptest.Publish(t, e.log, pdptest.Workload("acme-bot2", "acme-api", "acme", workloadActive))
	waitStatus(t, e.pdp, pdp.StatusStale)
	if got := decide(); got != pdp.ReasonStale {
		t.Errorf("events withheld: %s, want %s", got, pdp.ReasonStale)
	}
	e.feed.setFilter(nil)
	waitApplied(t, e.pdp, seq) // the follower gave up on the stuck stream and resubscribed
	waitStatus(t, e.pdp, pdp.StatusReady)
}

func TestNewEpochResyncsAndKeepsRevocations(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	// In the old log: a revoked credential, a blocked workload, a revoked key.
	old := e.claims()
	oldTok := e.key.Mint(t, old)
	k2 := pdptest.NewKey(t, "k2")
	more := []*treatyv1.Event{
		pdptest.Workload("acme-bot2", "acme-api", "acme", workloadActive),
		pdptest.Workload("acme-bot3", "acme-api", "acme", workloadActive),
		k2.Published(t),
	}
	pdptest.Publish(t, e.log, more...)
	pdptest.Revoke(t, e.log, credentialK, old.ID)
	pdptest.Revoke(t, e.log, workloadK, "acme-bot2")
	pdptest.Revoke(t, e.log, workloadK, "acme-bot3")
	pdptest.Restore(t, e.log, workloadK, "acme-bot3") // leaves a watermark
	waitApplied(t, e.pdp, pdptest.Revoke(t, e.log, keyK, "k2"))

	// The revoker's log is lost and recreated: the registry and issuer publish again, but the
	// kill-switch history is gone.
	fresh := newLog(t)
	onboard(t, fresh, e.key)
	pdptest.Publish(t, fresh, more...)

	gate := make(chan struct{})
	e.feed.setGate(gate)
	e.src.Switch(fresh)
	waitStatus(t, e.pdp, pdp.StatusStale) // resyncing: the snapshot is held back
	d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: e.token(t, nil), Action: "read", Resource: "api"})
	if err != nil || reason(t, d) != pdp.ReasonStale {
		t.Errorf("while resyncing: %v, %v; want %s", d.Reasons, err, pdp.ReasonStale)
	}
	close(gate)
	pdptest.WaitReady(t, e.pdp)

	head, epoch := fresh.Head(), fresh.Epoch()
	sameJTI := pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", epoch, head)
	sameJTI.ID = old.ID
	tokens := []struct {
		name string
		tok  string
		want string
	}{
		{"token of the old log", oldTok, pdp.ReasonEpochMismatch},
		{"credential revoked in the old log", e.key.Mint(t, sameJTI), pdp.ReasonRevoked},
		{"workload blocked in the old log", e.key.Mint(t, pdptest.Claims("acme-bot2", "acme-api", "acme", "read", "api", epoch, head)), pdp.ReasonWorkloadBlocked},
		{"workload restored in the old log: its watermark belonged to the old log", e.key.Mint(t, pdptest.Claims("acme-bot3", "acme-api", "acme", "read", "api", epoch, head)), pdp.ReasonGranted},
		{"token claiming a position the new log never reached", e.key.Mint(t, pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", epoch, head+100)), pdp.ReasonSequenceAhead},
		{"key revoked in the old log", k2.Mint(t, pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", epoch, head)), pdp.ReasonKeyRevoked},
		{"new token", e.key.Mint(t, pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", epoch, head)), pdp.ReasonGranted},
	}
	for _, tc := range tokens {
		d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tc.tok, Action: "read", Resource: "api", MinSequence: head})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := reason(t, d); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	c := cached(t, e.store)
	if c.Epoch() != fresh.Epoch() || c.Sequence() < head {
		t.Errorf("cache at %s/%d, want the new epoch %s at %d or later", c.Epoch(), c.Sequence(), fresh.Epoch(), head)
	}
	if _, ok := c.RevokedCredential(old.ID); !ok {
		t.Error("the cache lost the old revocation")
	}
}

func TestHeadBelowAppliedResyncs(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	c := e.claims()
	waitApplied(t, e.pdp, pdptest.Revoke(t, e.log, credentialK, c.ID))
	// One heartbeat claims a head below what was applied, as a log restored from an older backup
	// would.
	forged := false
	e.feed.setFilter(func(m *treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse {
		if hb := m.GetHeartbeat(); hb != nil && !forged {
			forged = true
			hb = proto.Clone(hb).(*treatyv1.Heartbeat)
			hb.HeadSequence = 1
			return &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: hb}}
		}
		return m
	})
	e.src.Switch(e.log) // reconnect, so the next opening heartbeat is the forged one
	seq := pdptest.Publish(t, e.log, pdptest.Workload("acme-bot", "acme-api", "acme", workloadActive))
	waitApplied(t, e.pdp, seq)
	pdptest.WaitReady(t, e.pdp)
	if n := e.feed.snapshotCalls(); n != 1 {
		t.Errorf("%d snapshots fetched, want 1", n)
	}
	d := e.check(t, e.key.Mint(t, c), "read", "api")
	if got := reason(t, d); got != pdp.ReasonRevoked {
		t.Errorf("after the resync: %s, want %s", got, pdp.ReasonRevoked)
	}
	sameState(t, e.log.State(), cached(t, e.store))
}

func TestRunTwice(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	if err := e.pdp.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

// TestCheckWaitsForATokenFromAheadOfIt covers a token issued on a decision another PDP made at a
// sequence this one has not applied yet: the check waits for it briefly instead of denying.
func TestCheckWaitsForATokenFromAheadOfIt(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	tok := e.token(t, func(c *token.Claims) { c.Sequence = e.log.Head() + 1 })
	go func() {
		time.Sleep(50 * time.Millisecond)
		pdptest.Revoke(t, e.log, credentialK, "unrelated")
	}()
	d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got := reason(t, d); got != pdp.ReasonGranted {
		t.Fatalf("reason = %s, want granted once the feed reached the token's tsq", got)
	}
}
