package pdpsvc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/decisionlog"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The PDP's two stores fail at once: its feed cache and its decision log. Decisions go on from the
// state in memory, allows and denies alike, never an RPC error, and none waits on the failing
// decision log. A revocation published meanwhile cannot be cached, so it is not applied, and a
// check that asks for its sequence is not allowed on the older state: it fails closed with
// UNAVAILABLE (the sequence was not applied in time); without a min_sequence the PDP keeps
// deciding on the older state until its staleness bound, then denies as stale. Once the disks
// heal the PDP applies the revocation by itself, and every decision made during the fault reaches
// the decision log: none is lost. Both files pass bbolt's consistency check at cleanup.
func TestPDPStoresFail(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	rl, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	key := pdptest.NewKey(t, "k1")
	pdptest.Publish(t, rl,
		pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, []string{"read", "write"}, []string{"api"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE),
		key.Published(t),
	)
	logSt := storetest.Faulty(storetest.OpenBolt(t, decisionlog.Schema))
	dl, err := decisionlog.Open(decisionlog.Config{Store: logSt, CommitInterval: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() }) // after the PDP stops (cleanups run last first)
	cacheSt := storetest.Faulty(storetest.OpenBolt(t, pdp.Schema))
	p := pdptest.Start(t, pdp.Config{
		Store: cacheSt, Source: pdptest.NewSource(rl, 50*time.Millisecond), Recorder: dl,
		MaxWait: 300 * time.Millisecond, StalenessBound: 2 * time.Second, Logger: logger,
	})
	pdptest.WaitReady(t, p)
	client := treatyv1.NewDecisionServiceClient(grpctest.Serve(t, pdpsvc.New(pdpsvc.Config{PDP: p, Logger: logger}).Register))
	tok := key.Mint(t, pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", rl.Epoch(), rl.Head()))
	check := func(token string, minSeq uint64) *treatyv1.CheckResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: token}, Action: "read", Resource: "api", MinSequence: minSeq})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	if resp := check(tok, 0); resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
		t.Fatalf("before the fault: %v", resp)
	}

	cacheSt.FailWrites(nil)
	logSt.FailWrites(nil)
	for range 50 {
		if resp := check(tok, 0); resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
			t.Fatalf("allowed credential while the stores fail: %v", resp)
		}
		if resp := check("garbage", 0); resp.GetDecision() != treatyv1.Decision_DECISION_DENY {
			t.Fatalf("garbage token while the stores fail: %v", resp)
		}
	}
	seq := pdptest.Revoke(t, rl, treatyv1.TargetKind_TARGET_KIND_WORKLOAD, "acme-bot")
	eventually(t, "the PDP tries to cache the revocation", func() bool { return cacheSt.Refused() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = client.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api", MinSequence: seq})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("check at the sequence of a revocation the PDP cannot cache: %v, want UNAVAILABLE (not applied in time)", err)
	}
	eventually(t, "the PDP denies as stale once it has lagged past its bound", func() bool {
		resp := check(tok, 0)
		return resp.GetDecision() == treatyv1.Decision_DECISION_DENY && equal(resp.GetReasons(), pdp.ReasonStale)
	})
	if st := dl.Stats(); st.Written >= st.Kept {
		t.Fatalf("decision log stats %+v while its disk fails: nothing should be written", st)
	}

	cacheSt.Heal()
	logSt.Heal()
	eventually(t, "the PDP applies the revocation after healing", func() bool {
		resp := check(tok, 0)
		return resp.GetDecision() == treatyv1.Decision_DECISION_DENY && resp.GetSequence() >= seq
	})
	if resp := check(tok, seq); !equal(resp.GetReasons(), pdp.ReasonWorkloadBlocked) {
		t.Fatalf("after healing: %v, want workload_blocked", resp)
	}
	eventually(t, "every decision reaches the decision log", func() bool { st := dl.Stats(); return st.Written == st.Kept })
	if st := dl.Stats(); st.Kept < 100+3 {
		t.Fatalf("decision log kept %d decisions, want every one of the %d made", st.Kept, 100+3)
	}
}

// eventually polls cond every 20 ms for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not after 20s: %s", what)
		}
	}
}
