package revoker_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

func TestMain(m *testing.M) {
	// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

const (
	credentialK  = treatyv1.TargetKind_TARGET_KIND_CREDENTIAL
	workloadK    = treatyv1.TargetKind_TARGET_KIND_WORKLOAD
	integrationK = treatyv1.TargetKind_TARGET_KIND_INTEGRATION
	partnerK     = treatyv1.TargetKind_TARGET_KIND_PARTNER
	keyK         = treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY
)

var now = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func entry(id string, ev *treatyv1.Event) *treatyv1.PublishEntry {
	return &treatyv1.PublishEntry{RequestId: id, Event: ev}
}

func partnerEv(id string, st treatyv1.PartnerState) *treatyv1.Event {
	return &treatyv1.Event{Actor: "registry", Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
		PartnerId: id, State: st, ContractEndTime: timestamppb.New(now.AddDate(1, 0, 0))}}}
}

func onboardingEntries(t testing.TB, partner string) []*treatyv1.PublishEntry {
	pub, _, _ := ed25519.GenerateKey(nil)
	jwk, err := (&jose.JSONWebKey{Key: pub, KeyID: "k-" + partner, Algorithm: "EdDSA"}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return []*treatyv1.PublishEntry{
		entry(partner+"-1", partnerEv(partner, treatyv1.PartnerState_PARTNER_STATE_ACTIVE)),
		entry(partner+"-2", &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{
			IntegrationId: partner + "-api", PartnerId: partner, State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
			AllowedScopes: []string{"read"}, Audiences: []string{"api"}, MaxCredentialTtl: durationpb.New(time.Hour)}}}),
		entry(partner+"-3", &treatyv1.Event{Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{
			WorkloadId: partner + "-bot", IntegrationId: partner + "-api", PartnerId: partner, State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE}}}),
		entry(partner+"-4", &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
			Kid: "k-" + partner, Algorithm: "EdDSA", PublicJwk: jwk, Issuer: "https://issuer.test"}}}),
	}
}

type inventory map[string]time.Time

func (inv inventory) Credential(_ context.Context, jti string) (time.Time, string, bool, error) {
	exp, ok := inv[jti]
	return exp, "acme", ok, nil
}

func openLog(t *testing.T, path string, cfg revoker.Config) *revoker.Log {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	l, err := revoker.Open(storetest.OpenBoltAt(t, path, revoker.Schema), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newLog(t *testing.T) *revoker.Log {
	t.Helper()
	l := openLog(t, filepath.Join(t.TempDir(), "revoker.db"), revoker.Config{Credentials: inventory{"known": now.Add(7 * time.Minute)}})
	if _, err := l.Publish(context.Background(), onboardingEntries(t, "acme")); err != nil {
		t.Fatal(err)
	}
	return l
}

func req(kind treatyv1.TargetKind, id string) revoker.Request {
	return revoker.Request{Kind: kind, Target: id, Reason: "incident 42", Actor: "alice"}
}

func TestRevokeAndRestore(t *testing.T) {
	ctx := context.Background()
	type step struct {
		restore  bool
		r        revoker.Request
		wantSeq  uint64
		already  bool
		wantKind fail.Kind // Internal means success
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"block then restore", []step{
			{r: req(partnerK, "acme"), wantSeq: 5},
			{restore: true, r: req(partnerK, "acme"), wantSeq: 6},
		}},
		{"second block is already in force", []step{
			{r: req(workloadK, "acme-bot"), wantSeq: 5},
			{r: req(workloadK, "acme-bot"), wantSeq: 5, already: true},
		}},
		{"restore without block", []step{
			{restore: true, r: req(integrationK, "acme-api"), wantKind: fail.Precondition},
		}},
		{"unknown entity", []step{
			{r: req(partnerK, "nobody"), wantKind: fail.NotFound},
			{restore: true, r: req(workloadK, "nobody"), wantKind: fail.NotFound},
		}},
		{"credentials and keys cannot be restored", []step{
			{r: req(credentialK, "jti-1"), wantSeq: 5},
			{restore: true, r: req(credentialK, "jti-1"), wantKind: fail.Invalid},
			{restore: true, r: req(keyK, "k-acme"), wantKind: fail.Invalid},
		}},
		{"key revocation", []step{
			{r: req(keyK, "k-unknown"), wantKind: fail.NotFound},
			{r: req(keyK, "k-acme"), wantSeq: 5},
			{r: req(keyK, "k-acme"), wantSeq: 5, already: true},
		}},
		{"request id makes a retry return the original", []step{
			{r: revoker.Request{Kind: credentialK, Target: "jti-9", Reason: "r", RequestID: "req-1"}, wantSeq: 5},
			{r: revoker.Request{Kind: partnerK, Target: "acme", Reason: "r"}, wantSeq: 6},
			{r: revoker.Request{Kind: credentialK, Target: "jti-9", Reason: "r", RequestID: "req-1"}, wantSeq: 5, already: true},
			{r: revoker.Request{Kind: workloadK, Target: "acme-bot", Reason: "r", RequestID: "req-1"}, wantKind: fail.Precondition},
		}},
		{"bad input", []step{
			{r: revoker.Request{Kind: partnerK, Target: "acme"}, wantKind: fail.Invalid},
			{r: revoker.Request{Kind: partnerK, Target: "Acme!", Reason: "r"}, wantKind: fail.Invalid},
			{r: revoker.Request{Target: "acme", Reason: "r"}, wantKind: fail.Invalid},
			{r: revoker.Request{Kind: credentialK, Target: "has space", Reason: "r"}, wantKind: fail.Invalid},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLog(t)
			for i, s := range tc.steps {
				op := l.Revoke
				if s.restore {
					op = l.Restore
				}
				out, err := op(ctx, s.r)
				if s.wantKind != fail.Internal {
					if err == nil || fail.KindOf(err) != s.wantKind {
						t.Fatalf("step %d: err = %v (kind %v), want kind %v", i, err, fail.KindOf(err), s.wantKind)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if out.Sequence != s.wantSeq || out.AlreadyApplied != s.already {
					t.Fatalf("step %d: outcome %+v, want seq %d already %v", i, out, s.wantSeq, s.already)
				}
			}
		})
	}
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	// Offboarding is a permanent block; suspension in the registry is not the revoker's to lift.
	_, err := l.Publish(ctx, []*treatyv1.PublishEntry{
		entry("s1", partnerEv("acme", treatyv1.PartnerState_PARTNER_STATE_SUSPENDED)),
		entry("s2", &treatyv1.Event{Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: partnerK, TargetId: "acme"}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Restore(ctx, req(partnerK, "acme")); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("restore of a registry-suspended partner: %v", err)
	}
	_, err = l.Publish(ctx, []*treatyv1.PublishEntry{
		entry("o1", partnerEv("acme", treatyv1.PartnerState_PARTNER_STATE_TERMINATED)),
		entry("o2", &treatyv1.Event{Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: partnerK, TargetId: "acme", Permanent: true}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Restore(ctx, req(partnerK, "acme"))
	if fail.KindOf(err) != fail.Precondition {
		t.Fatalf("restore of an offboarded partner: %v", err)
	}
	if ctl, _ := l.State().Control(partnerK, "acme"); ctl.Block == nil || !ctl.Block.Permanent {
		t.Fatalf("partner block = %+v, want permanent", ctl.Block)
	}
}

func TestCredentialExpiryFromInventory(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	for jti, want := range map[string]time.Time{"known": now.Add(7 * time.Minute), "unknown": now.Add(token.DefaultMaxLifetime)} {
		if _, err := l.Revoke(ctx, req(credentialK, jti)); err != nil {
			t.Fatal(err)
		}
		r, ok := l.State().RevokedCredential(jti)
		if !ok || !r.Expires.Equal(want) {
			t.Errorf("%s revoked until %v, want %v", jti, r.Expires, want)
		}
	}
}

func TestPublishValidationAndIdempotency(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	seqs, err := l.Publish(ctx, onboardingEntries(t, "acme")) // same request ids again
	if err != nil || fmt.Sprint(seqs) != "[1 2 3 4]" {
		t.Fatalf("republish = %v, %v; want the original sequences", seqs, err)
	}
	if l.Head() != 4 {
		t.Fatalf("head = %d after a republish, want 4", l.Head())
	}
	bad := [][]*treatyv1.PublishEntry{
		{entry("", partnerEv("x", treatyv1.PartnerState_PARTNER_STATE_ACTIVE))},
		{entry("a", &treatyv1.Event{})},
		{entry("b", &treatyv1.Event{Change: &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{Jti: "j1"}}})},
		{entry("e", &treatyv1.Event{Change: &treatyv1.Event_Restored{Restored: &treatyv1.Restored{TargetKind: partnerK, TargetId: "Not An Id"}}})},
		{entry("c", partnerEv("ok", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)), entry("d", partnerEv("BAD", treatyv1.PartnerState_PARTNER_STATE_ACTIVE))},
	}
	for i, entries := range bad {
		if _, err := l.Publish(ctx, entries); fail.KindOf(err) != fail.Invalid {
			t.Errorf("bad publish %d: %v, want Invalid", i, err)
		}
	}
	if l.Head() != 4 {
		t.Fatalf("a refused publish appended something: head %d", l.Head())
	}

	// A kid may be published again with the same key, never with another one.
	key := onboardingEntries(t, "acme")[3].GetEvent().GetSigningKeyPublished() // same kid, a new key
	known, _ := l.State().SigningKey(key.GetKid())
	same := &treatyv1.SigningKeyPublished{Kid: known.Kid, Algorithm: known.Algorithm, PublicJwk: known.JWK, Issuer: known.Issuer}
	if _, err := l.Publish(ctx, []*treatyv1.PublishEntry{entry("again", &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: same}})}); err != nil {
		t.Errorf("republishing the same key: %v", err)
	}
	_, err = l.Publish(ctx, []*treatyv1.PublishEntry{entry("swap", &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: key}})})
	if fail.KindOf(err) != fail.Precondition {
		t.Errorf("publishing other key material under a known kid: %v, want Precondition", err)
	}
	if k, _ := l.State().SigningKey(key.GetKid()); string(k.JWK) != string(known.JWK) {
		t.Error("the published key was replaced")
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revoker.db")
	st, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(ctx, onboardingEntries(t, "acme")); err != nil {
		t.Fatal(err)
	}
	out, err := l.Revoke(ctx, req(partnerK, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	epoch := l.Epoch()
	st.Close()

	l2 := openLog(t, path, revoker.Config{})
	if l2.Epoch() != epoch || l2.Head() != out.Sequence {
		t.Fatalf("reopened at %s/%d, want %s/%d", l2.Epoch(), l2.Head(), epoch, out.Sequence)
	}
	if ctl, _ := l2.State().Control(partnerK, "acme"); ctl.Block == nil || ctl.Block.Sequence != out.Sequence {
		t.Fatalf("block lost across reopen: %+v", ctl)
	}
	// Reads after a reopen come from the store, then from memory, with no gap.
	if _, err := l2.Restore(ctx, req(partnerK, "acme")); err != nil {
		t.Fatal(err)
	}
	evs, err := l2.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.GetSequence() != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, ev.GetSequence())
		}
	}
	if len(evs) != 6 {
		t.Fatalf("read %d events, want 6", len(evs))
	}
	// A new log file gets a new epoch.
	if other := openLog(t, filepath.Join(t.TempDir(), "other.db"), revoker.Config{}); other.Epoch() == epoch {
		t.Fatal("two logs share an epoch")
	}
}

func TestConcurrentRevocationsAreGapFree(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	const callers, each = 16, 20
	var wg sync.WaitGroup
	seqs := make(chan uint64, callers*each)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				out, err := l.Revoke(ctx, req(credentialK, fmt.Sprintf("jti-%d-%d", c, i)))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- out.Sequence
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("sequence %d acknowledged twice", s)
		}
		seen[s] = true
	}
	for s := uint64(5); s < 5+callers*each; s++ {
		if !seen[s] {
			t.Fatalf("sequence %d missing", s)
		}
	}
}

func TestChangedWakesReaders(t *testing.T) {
	l := newLog(t)
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before an append")
	default:
	}
	if _, err := l.Revoke(context.Background(), req(credentialK, "j")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after an append")
	}
}

func TestReepochKeepsEventsAndState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revoker.db")
	st, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(context.Background(), onboardingEntries(t, "acme")); err != nil {
		t.Fatal(err)
	}
	out, err := l.Revoke(context.Background(), req(partnerK, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	before, head := l.Epoch(), l.Head()
	st.Close()

	if st, err = store.OpenBolt(path, revoker.Schema); err != nil {
		t.Fatal(err)
	}
	old, epoch, err := revoker.Reepoch(st)
	st.Close()
	if err != nil || old != before || epoch == before || len(epoch) != 32 {
		t.Fatalf("Reepoch = %q, %q, %v; want the old epoch %q replaced by a new one", old, epoch, err, before)
	}
	l = openLog(t, path, revoker.Config{})
	if l.Epoch() != epoch || l.State().Epoch() != epoch || l.Head() != head {
		t.Fatalf("reopened: epoch %q (state %q), head %d; want %q at %d", l.Epoch(), l.State().Epoch(), l.Head(), epoch, head)
	}
	if ctl, _ := l.State().Control(partnerK, "acme"); ctl.Block == nil || ctl.Block.Sequence != out.Sequence {
		t.Fatalf("the block did not survive the new epoch: %+v", ctl)
	}
	if evs, err := l.Read(0, 100); err != nil || uint64(len(evs)) != head {
		t.Fatalf("Read = %d events, %v; want all %d", len(evs), err, head)
	}
}

// A publisher (the registry reactivating a suspended partner) may lift a block it placed: the
// restore's sequence becomes the watermark. A permanent block stays, whoever publishes the restore,
// and so does an operator's block: a reactivation never undoes the kill switch.
func TestPublishedRestoreLiftsOnlyTemporaryBlocks(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	block := func(id string, permanent bool) *treatyv1.PublishEntry {
		return entry("block-"+id, &treatyv1.Event{Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: partnerK, TargetId: id, Permanent: permanent, Lifecycle: true}}})
	}
	restore := func(id string) *treatyv1.PublishEntry {
		return entry("restore-"+id, &treatyv1.Event{Change: &treatyv1.Event_Restored{Restored: &treatyv1.Restored{TargetKind: partnerK, TargetId: id, Lifecycle: true}}})
	}
	if _, err := l.Publish(ctx, []*treatyv1.PublishEntry{entry("p2", partnerEv("globex", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)),
		entry("p3", partnerEv("initech", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)), block("acme", false), block("globex", true), block("initech", false)}); err != nil {
		t.Fatal(err)
	}
	// An operator also pulls the kill switch on initech, which the registry had suspended.
	if _, err := l.Revoke(ctx, revoker.Request{Kind: partnerK, Target: "initech", Reason: "incident", Actor: "soc"}); err != nil {
		t.Fatal(err)
	}
	seqs, err := l.Publish(ctx, []*treatyv1.PublishEntry{restore("acme"), restore("globex"), restore("initech")})
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := l.State().Partner("acme")
	if acme.Block != nil || acme.Watermark != seqs[0] {
		t.Errorf("acme after a published restore: %+v, want no block and watermark %d", acme.Control, seqs[0])
	}
	globex, _ := l.State().Partner("globex")
	if globex.Block == nil || !globex.Block.Permanent {
		t.Errorf("globex's permanent block was lifted: %+v", globex.Control)
	}
	initech, _ := l.State().Partner("initech")
	if initech.Block == nil || !initech.Block.Operator || initech.Block.Lifecycle {
		t.Fatalf("initech after the reactivation: %+v, want the operator's block kept", initech.Control)
	}
	// Only an operator's restore lifts it.
	if _, err := l.Restore(ctx, revoker.Request{Kind: partnerK, Target: "initech", Reason: "investigated", Actor: "soc"}); err != nil {
		t.Fatal(err)
	}
	if initech, _ := l.State().Partner("initech"); initech.Block != nil {
		t.Errorf("initech after the operator's restore: %+v, want no block", initech.Control)
	}
	// A publisher cannot send an operator's restore.
	if _, err := l.Publish(ctx, []*treatyv1.PublishEntry{entry("r-op", &treatyv1.Event{Change: &treatyv1.Event_Restored{
		Restored: &treatyv1.Restored{TargetKind: partnerK, TargetId: "acme"}}})}); fail.KindOf(err) != fail.Invalid {
		t.Errorf("published operator restore: %v, want Invalid", err)
	}
}
