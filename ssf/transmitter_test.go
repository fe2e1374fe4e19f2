package ssf_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/ssf/ssftest"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const issuer = "https://treaty.example.com"

func start(t *testing.T, f *ssftest.Feed) *ssf.Transmitter {
	t.Helper()
	return ssftest.Start(t, storetest.OpenBolt(t, ssf.Schema), ssf.Config{
		Issuer: issuer, Source: f.Source, PollWait: time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
}

// waitPosition waits until the transmitter has handled the feed up to seq.
func waitPosition(t *testing.T, tr *ssf.Transmitter, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, after, err := tr.Position()
		if err != nil {
			t.Fatal(err)
		}
		if after >= seq {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("transmitter never reached feed sequence %d", seq)
}

// polled polls a stream once and returns the revoked credential jtis of its SETs, acknowledging
// them.
func polled(t *testing.T, tr *ssf.Transmitter, id string, want int) map[string]string {
	t.Helper()
	out := map[string]string{} // SET jti -> credential jti
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		resp, err := tr.Poll(context.Background(), id, ssf.PollRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ack []string
		for setJTI, raw := range resp.Sets {
			s := ssftest.Verify(t, raw, tr.JWKS())
			sub := s.Claims["sub_id"].(map[string]any)
			out[setJTI], _ = sub["jti"].(string)
			ack = append(ack, setJTI)
		}
		if _, err := tr.Poll(context.Background(), id, ssf.PollRequest{Ack: ack, MaxEvents: new(int)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != want {
		t.Fatalf("polled %d SETs, want %d: %v", len(out), want, out)
	}
	return out
}

// TestNewStreamStartsAtThePosition: a transmitter that had no streams starts at the feed's head,
// and a stream gets the events after its creation, not the history.
func TestNewStreamStartsAtThePosition(t *testing.T) {
	f := ssftest.NewFeed(t)
	old := f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-before")
	tr := start(t, f)
	waitPosition(t, tr, old)
	cfg, err := tr.CreateStream(context.Background(), ssf.StreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-after")
	got := polled(t, tr, cfg.StreamID, 1)
	for _, jti := range got {
		if jti != "tok-after" {
			t.Fatalf("stream got %q, which was revoked before it existed", jti)
		}
	}
}

// TestReplacedFeedResyncs: when the revoker's log is replaced by one with a new epoch, the
// transmitter follows the new log from its start, and SETs for sequences it saw in the old log
// get new jtis, so receivers deduplicating by jti drop nothing.
func TestReplacedFeedResyncs(t *testing.T) {
	a := ssftest.NewFeed(t)
	tr := start(t, a)
	waitPosition(t, tr, a.Log.Head())
	cfg, err := tr.CreateStream(context.Background(), ssf.StreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-a")
	first := polled(t, tr, cfg.StreamID, 1)

	b := ssftest.NewFeed(t) // same entities, so the revocation lands at the same sequence
	b.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-b")
	a.Source.Switch(b.Log)
	second := polled(t, tr, cfg.StreamID, 1)
	for setJTI, jti := range second {
		if jti != "tok-b" {
			t.Fatalf("after the switch the stream got %q", jti)
		}
		if _, dup := first[setJTI]; dup {
			t.Fatalf("the new log's SET reuses jti %s of the old log's", setJTI)
		}
	}
	epoch, _, _ := tr.Position()
	if epoch != b.Log.Epoch() {
		t.Fatalf("position epoch = %s, want the new log's %s", epoch, b.Log.Epoch())
	}
}

// TestEventsFilteredByStream: a stream that asked only for session-revoked gets no
// credential-change SETs.
func TestEventsFilteredByStream(t *testing.T) {
	f := ssftest.NewFeed(t)
	tr := start(t, f)
	waitPosition(t, tr, f.Log.Head())
	only := []string{ssf.EventSessionRevoked}
	cfg, err := tr.CreateStream(context.Background(), ssf.StreamRequest{EventsRequested: &only})
	if err != nil {
		t.Fatal(err)
	}
	f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-1")
	seq := f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_PARTNER, ssftest.Partner)
	waitPosition(t, tr, seq)
	if n, _ := tr.Queued(context.Background(), cfg.StreamID); n != 1 {
		t.Fatalf("queued %d SETs, want only the session-revoked one", n)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	f := ssftest.NewFeed(t)
	st := storetest.OpenBolt(t, ssf.Schema)
	cases := map[string]ssf.Config{
		"no source":         {Issuer: issuer},
		"no issuer":         {Source: f.Source},
		"relative issuer":   {Issuer: "/ssf", Source: f.Source},
		"issuer with query": {Issuer: "https://t.example.com/?a=b", Source: f.Source},
		"ftp issuer":        {Issuer: "ftp://t.example.com", Source: f.Source},
	}
	for name, cfg := range cases {
		if _, err := ssf.Open(st, cfg); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// TestKeyPersists: the signing key is generated once and kept in the store, so a restart does
// not invalidate receivers' cached JWKS; it is RSA of at least 2048 bits.
func TestKeyPersists(t *testing.T) {
	f := ssftest.NewFeed(t)
	path := t.TempDir() + "/ssf.db"
	st := storetest.OpenBoltAt(t, path, ssf.Schema)
	one, err := ssf.Open(st, ssf.Config{Issuer: issuer, Source: f.Source})
	if err != nil {
		t.Fatal(err)
	}
	two, err := ssf.Open(st, ssf.Config{Issuer: issuer, Source: f.Source})
	if err != nil {
		t.Fatal(err)
	}
	if one.KeyID() != two.KeyID() || one.KeyID() == "" {
		t.Fatalf("key ids %q and %q", one.KeyID(), two.KeyID())
	}
	k := one.JWKS().Keys[0]
	if !k.IsPublic() || k.Algorithm != "RS256" || k.Use != "sig" {
		t.Fatalf("published key %+v", k)
	}
	md := one.Metadata()
	if md.Issuer != issuer || !strings.HasPrefix(md.JWKSURI, issuer+"/") {
		t.Fatalf("metadata %+v", md)
	}
}

// TestIssuerWithPath: an issuer with a path serves its metadata at the well-known path followed
// by the issuer's path (SSF 1.0 section 7.2), and its endpoints below the issuer.
func TestIssuerWithPath(t *testing.T) {
	f := ssftest.NewFeed(t)
	tr, err := ssf.Open(storetest.OpenBolt(t, ssf.Schema), ssf.Config{Issuer: "https://t.example.com/tenant1/", Source: f.Source})
	if err != nil {
		t.Fatal(err)
	}
	p := tr.Paths()
	if p.WellKnown != "/.well-known/ssf-configuration/tenant1" || p.Configuration != "/tenant1/ssf/stream" {
		t.Fatalf("paths %+v", p)
	}
	if tr.Issuer() != "https://t.example.com/tenant1" {
		t.Fatalf("issuer %q", tr.Issuer())
	}
}

// TestCloseBeforeRun: a Run that starts after Close returns at once, so a shutdown racing the
// start never leaves the transmitter running.
func TestCloseBeforeRun(t *testing.T) {
	f := ssftest.NewFeed(t)
	tr, err := ssf.Open(storetest.OpenBolt(t, ssf.Schema), ssf.Config{Issuer: issuer, Source: f.Source})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	done := make(chan error, 1)
	go func() { done <- tr.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run after Close did not return")
	}
}

// TestReconfiguredPushSkipsBackoff: a receiver that fixes its endpoint during a long backoff is
// tried at once, not after the backoff.
func TestReconfiguredPushSkipsBackoff(t *testing.T) {
	f := ssftest.NewFeed(t)
	tr := ssftest.Start(t, storetest.OpenBolt(t, ssf.Schema), ssf.Config{
		Issuer: issuer, Source: f.Source, RetryMin: time.Hour, RetryMax: time.Hour,
	})
	waitPosition(t, tr, f.Log.Head())
	down := ssftest.NewReceiver(t, 1<<30)
	cfg, err := tr.CreateStream(context.Background(), ssf.StreamRequest{Delivery: &ssf.Delivery{Method: ssf.MethodPush, EndpointURL: down.URL}})
	if err != nil {
		t.Fatal(err)
	}
	f.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-1")
	for deadline := time.Now().Add(10 * time.Second); down.Attempts() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first push was never attempted")
		}
	}
	up := ssftest.NewReceiver(t, 0)
	if _, err := tr.UpdateStream(context.Background(), ssf.StreamRequest{
		StreamID: cfg.StreamID, Delivery: &ssf.Delivery{Method: ssf.MethodPush, EndpointURL: up.URL},
	}, false); err != nil {
		t.Fatal(err)
	}
	up.WaitSETs(t, 1)
}

// TestRestoredOlderFeedResyncs: a revoker log restored from an older copy has the same epoch.
// Whether its head is below the transmitter's position (caught by the heartbeat) or already past
// it (caught by comparing the event at the position), the transmitter replays it, and the SETs of
// the sequences it reuses get new jtis.
func TestRestoredOlderFeedResyncs(t *testing.T) {
	for _, appended := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d appended after the restore", appended), func(t *testing.T) {
			dir := t.TempDir()
			orig := ssftest.NewFeedAt(t, dir+"/revoker.db")
			backup := dir + "/backup.db"
			ssftest.CopyStore(t, orig, backup) // the copy holds the entities, head 4

			tr := start(t, orig)
			waitPosition(t, tr, orig.Log.Head())
			cfg, err := tr.CreateStream(context.Background(), ssf.StreamRequest{})
			if err != nil {
				t.Fatal(err)
			}
			orig.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-lost-1")
			orig.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-lost-2")
			first := polled(t, tr, cfg.StreamID, 2)

			restored := ssftest.OpenFeedAt(t, backup)
			if restored.Log.Epoch() != orig.Log.Epoch() || restored.Log.Head() >= orig.Log.Head() {
				t.Fatalf("the copy is not an older copy of the same log")
			}
			want := map[string]bool{}
			for i := range appended {
				jti := fmt.Sprintf("tok-new-%d", i)
				want[jti] = true
				restored.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, jti)
			}
			orig.Source.Switch(restored.Log)
			second := polled(t, tr, cfg.StreamID, appended)
			for setJTI, jti := range second {
				if !want[jti] {
					t.Fatalf("after the restore the stream got %q", jti)
				}
				if _, dup := first[setJTI]; dup {
					t.Fatalf("the restored log's SET reuses jti %s", setJTI)
				}
			}
		})
	}
}
