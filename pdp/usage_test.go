package pdp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// sink keeps the reports it receives, or refuses them while err is set.
type sink struct {
	mu      sync.Mutex
	err     error
	reports [][]pdp.Usage
}

func (s *sink) ReportUsage(_ context.Context, u []pdp.Usage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.reports = append(s.reports, append([]pdp.Usage(nil), u...))
	return nil
}

func (s *sink) ids() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.reports {
		for _, u := range r {
			out[u.CredentialID]++
		}
	}
	return out
}

func TestUsageReporter(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	s := &sink{}
	r, err := pdp.NewUsageReporter(pdp.UsageReporterConfig{PDP: e.pdp, Sink: s, Batch: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(jti string) string { return e.token(t, func(c *token.Claims) { c.ID = jti }) }
	a, b, c, denied := mint("jti-a"), mint("jti-b"), mint("jti-c"), mint("jti-denied")
	for _, tok := range []string{a, a, b, c} { // a allowed twice, first sight and cached
		if d := e.check(t, tok, "read", "api"); !d.Allow {
			t.Fatalf("denied: %v", d.Reasons)
		}
	}
	if d := e.check(t, denied, "delete", "api"); d.Allow {
		t.Fatal("delete allowed")
	}
	before := time.Now().Add(-time.Second)
	if err := r.Report(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"jti-a": 1, "jti-b": 1, "jti-c": 1}
	if got := s.ids(); len(got) != 3 || got["jti-a"] != 1 || got["jti-b"] != 1 || got["jti-c"] != 1 {
		t.Fatalf("reported %v, want %v (once each, never the denied token)", got, want)
	}
	if len(s.reports) != 2 {
		t.Fatalf("%d reports, want 2 of at most 2 entries", len(s.reports))
	}
	if u := s.reports[0][0]; u.LastSeen.Before(before.Truncate(time.Second)) || u.LastSeen.After(time.Now()) {
		t.Fatalf("last seen %v is not now", u.LastSeen)
	}

	// Nothing new: nothing reported. A refused report is kept for the next one.
	s.err = errors.New("issuer unreachable")
	if err := r.Report(context.Background()); err != nil {
		t.Fatalf("an empty report failed: %v", err)
	}
	e.check(t, b, "read", "api")
	if err := r.Report(context.Background()); err == nil {
		t.Fatal("a refused report returned nil")
	}
	s.err = nil
	if err := r.Report(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.ids(); got["jti-b"] != 2 || got["jti-a"] != 1 {
		t.Fatalf("after the retry: %v, want jti-b reported a second time", got)
	}

	// Run reports on its interval and once more when it stops.
	fast, _ := pdp.NewUsageReporter(pdp.UsageReporterConfig{PDP: e.pdp, Sink: s, Interval: 10 * time.Millisecond, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fast.Run(ctx); close(done) }()
	e.check(t, c, "read", "api")
	deadline := time.Now().Add(5 * time.Second)
	for s.ids()["jti-c"] != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := s.ids()["jti-c"]; got != 2 {
		t.Fatalf("jti-c reported %d times by Run, want 2", got)
	}
}
