package posture_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// source is a Gather function over an input the test changes.
type source struct {
	mu  sync.Mutex
	in  posture.Input
	err error
}

func (s *source) set(change func(*posture.Input)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.in)
	s.in.Now = s.in.Now.Add(time.Second)
}

func (s *source) gather(context.Context) (posture.Input, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in, s.err
}

func TestRunnerOnNew(t *testing.T) {
	src := &source{in: fixture()}
	src.in.Integrations[0].Owner = "" // medium: never notified
	var got [][]string
	r, err := posture.NewRunner(posture.RunnerConfig{Gather: src.gather, OnNew: func(_ context.Context, fs []posture.Finding) {
		var ids []string
		for _, f := range fs {
			ids = append(ids, f.ID)
		}
		got = append(got, ids)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, ok := r.Latest(); ok {
		t.Fatal("Latest before any computation")
	}
	src.set(func(in *posture.Input) { in.Partners[1].NextReview = now.Add(-day) }) // high, but in the baseline
	if _, err := r.Compute(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("the baseline notified %v", got)
	}
	src.set(func(in *posture.Input) { in.Partners[0].State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING }) // critical: new
	res, err := r.Compute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 1 || got[0][0] != "ex_partner_live_credentials:partner/acme" {
		t.Fatalf("OnNew got %v, want the ex-partner finding once", got)
	}
	if latest, _ := r.Latest(); len(latest.Findings) != len(res.Findings) || !latest.Time.Equal(res.Time) {
		t.Errorf("Latest = %+v, want the last computation", latest)
	}
	if _, err := r.Compute(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("a finding already known was notified again: %v", got)
	}
	// Fixed, then back: new again.
	src.set(func(in *posture.Input) { in.Partners[0].State = treatyv1.PartnerState_PARTNER_STATE_ACTIVE })
	r.Compute(ctx)
	src.set(func(in *posture.Input) { in.Partners[0].State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING })
	r.Compute(ctx)
	if len(got) != 2 {
		t.Fatalf("a finding that came back was not notified: %v", got)
	}
	src.err = errors.New("registry down")
	if _, err := r.Compute(ctx); err == nil {
		t.Fatal("Compute hid the gather error")
	}
	if latest, ok := r.Latest(); !ok || len(latest.Findings) == 0 {
		t.Error("a failed computation dropped the latest result")
	}
}

func TestRunnerNotifyFirst(t *testing.T) {
	src := &source{in: fixture()}
	src.in.Partners[0].State = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING
	n := 0
	r, err := posture.NewRunner(posture.RunnerConfig{Gather: src.gather, NotifyFirst: true,
		OnNew: func(_ context.Context, fs []posture.Finding) { n += len(fs) }})
	if err != nil {
		t.Fatal(err)
	}
	r.Compute(context.Background())
	if n != 1 {
		t.Errorf("NotifyFirst: %d findings notified, want 1", n)
	}
}

func TestRunnerSchedule(t *testing.T) {
	src := &source{in: fixture()}
	notified := make(chan []posture.Finding, 10)
	r, err := posture.NewRunner(posture.RunnerConfig{Gather: src.gather, Interval: 20 * time.Millisecond,
		OnNew: func(_ context.Context, fs []posture.Finding) { notified <- fs }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := r.Latest(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run computed nothing in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	src.set(func(in *posture.Input) {
		in.Integrations[1].SenderConstraint = treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
	})
	select {
	case fs := <-notified:
		if len(fs) != 1 || fs[0].Rule != "bearer_tokens_for_critical_partner" {
			t.Errorf("notified %+v", fs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the schedule did not notify the new finding in 10 s")
	}
	cancel()
	<-done
}

func TestNewRunnerChecksConfig(t *testing.T) {
	for name, cfg := range map[string]posture.RunnerConfig{
		"no gather":         {},
		"negative interval": {Gather: (&source{}).gather, Interval: -time.Second},
		"negative max age":  {Gather: (&source{}).gather, Rules: posture.Config{MaxKeyAge: -time.Hour}},
	} {
		if _, err := posture.NewRunner(cfg); err == nil {
			t.Errorf("%s: NewRunner accepted it", name)
		}
	}
}
