package revoker_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
)

func TestRevokeAll(t *testing.T) {
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
	if _, err := l.Publish(ctx, onboardingEntries(t, "acme")); err != nil { // sequences 1-4
		t.Fatal(err)
	}
	all := func(below uint64, id string) revoker.RevokeAllRequest {
		return revoker.RevokeAllRequest{Below: below, Reason: "issuer key leaked", Actor: "alice", RequestID: id}
	}
	steps := []struct {
		name     string
		r        revoker.RevokeAllRequest
		want     revoker.RevokeAllOutcome
		wantKind fail.Kind
	}{
		{name: "no reason", r: revoker.RevokeAllRequest{}, wantKind: fail.Invalid},
		{name: "past the head plus one", r: all(6, ""), wantKind: fail.Invalid},
		{name: "below an early sequence", r: all(3, "r1"), want: revoker.RevokeAllOutcome{Sequence: 5, Below: 3}},
		{name: "retried by request id", r: all(3, "r1"), want: revoker.RevokeAllOutcome{Sequence: 5, Below: 3, AlreadyApplied: true}},
		{name: "lower than the one in force", r: all(2, ""), want: revoker.RevokeAllOutcome{Sequence: 5, Below: 3, AlreadyApplied: true}},
		{name: "the head (zero)", r: all(0, "r2"), want: revoker.RevokeAllOutcome{Sequence: 6, Below: 6}},
		{name: "equal to the one in force", r: all(6, ""), want: revoker.RevokeAllOutcome{Sequence: 6, Below: 6, AlreadyApplied: true}},
	}
	for _, s := range steps {
		got, err := l.RevokeAll(ctx, s.r)
		switch {
		case s.wantKind != fail.Internal:
			if fail.KindOf(err) != s.wantKind {
				t.Errorf("%s: %+v, %v; want kind %v", s.name, got, err, s.wantKind)
			}
		case err != nil:
			t.Errorf("%s: %v", s.name, err)
		case got != s.want:
			t.Errorf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	if w := l.State().GlobalWatermark(); w != 6 {
		t.Fatalf("watermark %d, want 6", w)
	}
	r := req(credentialK, "jti-1")
	r.RequestID = "r3"
	if _, err := l.Revoke(ctx, r); err != nil { // sequence 7
		t.Fatal(err)
	}
	if _, err := l.RevokeAll(ctx, all(0, "r3")); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("a request id used for a revocation: %v, want a precondition failure", err)
	}
	// Durable: a reopened log knows the watermark and which event set it.
	st.Close()
	l = openLog(t, path, revoker.Config{})
	if got, err := l.RevokeAll(ctx, all(4, "")); err != nil || got != (revoker.RevokeAllOutcome{Sequence: 6, Below: 6, AlreadyApplied: true}) {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
}
