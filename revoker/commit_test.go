package revoker_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
)

// waitQueue waits until n requests are queued behind a leader.
func waitQueue(t *testing.T, l *revoker.Log, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, leading := revoker.Queue(l)
		if q == n && leading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued (leader: %v), want %d", q, leading, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitKeepsEachRequestsSemantics queues requests into one batch behind a held leader
// and checks that each is validated against the earlier ones, fails alone, and keeps its request
// id, and that a Publish call refused halfway appends none of its entries.
func TestGroupCommitKeepsEachRequestsSemantics(t *testing.T) {
	ctx := context.Background()
	l := newLog(t)
	head := l.Head()

	pub, _, _ := ed25519.GenerateKey(nil)
	otherJWK, err := (&jose.JSONWebKey{Key: pub, KeyID: "k-acme", Algorithm: "EdDSA"}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		out  revoker.Outcome
		seqs []uint64
		err  error
	}
	calls := []struct {
		name     string
		call     func() answer
		wantSeq  uint64 // 0: error expected
		already  bool
		wantKind fail.Kind
	}{
		{name: "block the partner", wantSeq: head + 2, call: func() answer {
			out, err := l.Revoke(ctx, req(partnerK, "acme"))
			return answer{out: out, err: err}
		}},
		{name: "restore it: sees the block queued before it", wantSeq: head + 3, call: func() answer {
			out, err := l.Restore(ctx, req(partnerK, "acme"))
			return answer{out: out, err: err}
		}},
		{name: "publish refused at its second entry: its first is not appended", wantKind: fail.Precondition, call: func() answer {
			seqs, err := l.Publish(ctx, []*treatyv1.PublishEntry{
				entry("p2-1", partnerEv("p2", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)),
				entry("p2-2", &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
					Kid: "k-acme", Algorithm: "EdDSA", PublicJwk: otherJWK, Issuer: "https://issuer.test"}}}),
			})
			return answer{seqs: seqs, err: err}
		}},
		{name: "revoke a credential with a request id", wantSeq: head + 4, call: func() answer {
			r := req(credentialK, "jti-x")
			r.RequestID = "req-x"
			out, err := l.Revoke(ctx, r)
			return answer{out: out, err: err}
		}},
		{name: "its retry in the same batch", wantSeq: head + 4, already: true, call: func() answer {
			r := req(credentialK, "jti-x")
			r.RequestID = "req-x"
			out, err := l.Revoke(ctx, r)
			return answer{out: out, err: err}
		}},
		{name: "an unknown workload fails alone", wantKind: fail.NotFound, call: func() answer {
			out, err := l.Revoke(ctx, req(workloadK, "nobody"))
			return answer{out: out, err: err}
		}},
		{name: "a publish after the refused one", wantSeq: head + 5, call: func() answer {
			seqs, err := l.Publish(ctx, []*treatyv1.PublishEntry{entry("p3-1", partnerEv("p3", treatyv1.PartnerState_PARTNER_STATE_ACTIVE))})
			if len(seqs) == 1 {
				return answer{out: revoker.Outcome{Sequence: seqs[0]}, err: err}
			}
			return answer{seqs: seqs, err: err}
		}},
	}

	release := revoker.HoldCommits(l)
	lead := make(chan error, 1)
	go func() {
		_, err := l.Revoke(ctx, req(credentialK, "jti-leader"))
		lead <- err
	}()
	waitQueue(t, l, 0) // the leader took its batch and waits for the commit lock
	answers := make([]chan answer, len(calls))
	for i, c := range calls {
		answers[i] = make(chan answer, 1)
		go func() { answers[i] <- c.call() }()
		waitQueue(t, l, i+1)
	}
	release()
	if err := <-lead; err != nil {
		t.Fatalf("leader: %v", err)
	}
	for i, c := range calls {
		a := <-answers[i]
		switch {
		case c.wantSeq == 0:
			if fail.KindOf(a.err) != c.wantKind {
				t.Errorf("%s: got %v (%v), want kind %v", c.name, a.out, a.err, c.wantKind)
			}
		case a.err != nil:
			t.Errorf("%s: %v", c.name, a.err)
		case a.out.Sequence != c.wantSeq || a.out.AlreadyApplied != c.already:
			t.Errorf("%s: got %+v, want sequence %d (already applied: %v)", c.name, a.out, c.wantSeq, c.already)
		}
	}
	if got := l.Head(); got != head+5 {
		t.Fatalf("head %d, want %d", got, head+5)
	}
	if _, ok := l.State().Partner("p2"); ok {
		t.Error("the refused publish call's first entry was appended")
	}
	evs, err := l.Read(head, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.GetSequence() != head+uint64(i)+1 {
			t.Fatalf("event %d has sequence %d", i, ev.GetSequence())
		}
	}
}

// TestGroupCommitSkipsCancelledRequests: a request whose context ends while it is queued is not
// appended, and says so.
func TestGroupCommitSkipsCancelledRequests(t *testing.T) {
	l := newLog(t)
	head := l.Head()
	release := revoker.HoldCommits(l)
	lead := make(chan error, 1)
	go func() {
		_, err := l.Revoke(context.Background(), req(credentialK, "jti-leader"))
		lead <- err
	}()
	waitQueue(t, l, 0)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := l.Revoke(ctx, req(credentialK, "jti-cancelled"))
		errs <- err
	}()
	waitQueue(t, l, 1)
	cancel()
	release()
	if err := <-lead; err != nil {
		t.Fatal(err)
	}
	if err := <-errs; fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("cancelled request: %v, want unavailable", err)
	}
	if _, ok := l.State().RevokedCredential("jti-cancelled"); ok || l.Head() != head+1 {
		t.Fatalf("the cancelled request was appended (head %d)", l.Head())
	}
}

// TestGroupCommitSurvivesAPanic: a panic while committing fails the batch's requests instead of
// leaving them (and every later caller) waiting.
func TestGroupCommitSurvivesAPanic(t *testing.T) {
	l := newLog(t)
	head := l.Head()
	if _, err := revoker.CommitPanicking(l); fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("a panicking build: %v, want unavailable", err)
	}
	if out, err := l.Revoke(context.Background(), req(credentialK, "after")); err != nil || out.Sequence != head+1 {
		t.Fatalf("after the panic: %+v, %v", out, err)
	}
}
