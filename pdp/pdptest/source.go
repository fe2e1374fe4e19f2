// Package pdptest helps tests run a real PDP: an in-process feed.Source over a real revoker log, a
// real Ed25519 issuer key that mints real tokens, and builders for the events the registry
// publishes. Tests in other packages (services/pdpsvc, end-to-end tests) use it as they use
// storetest.
package pdptest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/revoker"
)

// ErrUnreachable is what the Source answers while it has no log, as a revoker that went away.
var ErrUnreachable = errors.New("pdptest: source unreachable")

// Source is a feed.Source reading a *revoker.Log in process, with the stream contract of the
// revoker's Subscribe: an opening heartbeat, then every event in order, then live events and a
// heartbeat every interval. Switch replaces the log (or takes it away), ending open streams, to
// simulate a revoker that was replaced or went down.
type Source struct {
	heartbeat time.Duration

	mu  sync.Mutex
	log *revoker.Log
	cut chan struct{} // closed by Switch, ending the streams of the previous log
}

// NewSource returns a Source over log sending heartbeats every interval (the revoker's is 1 s;
// tests use less to run faster).
func NewSource(log *revoker.Log, heartbeat time.Duration) *Source {
	return &Source{heartbeat: heartbeat, log: log, cut: make(chan struct{})}
}

var _ feed.Source = (*Source)(nil)

// Switch makes the source serve log from now on, ending every open stream. A nil log makes it
// unreachable.
func (s *Source) Switch(log *revoker.Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.cut)
	s.cut = make(chan struct{})
	s.log = log
}

func (s *Source) current() (*revoker.Log, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log, s.cut
}

// Subscribe streams the log's events after the given sequence.
func (s *Source) Subscribe(ctx context.Context, after uint64) (feed.Stream, error) {
	log, cut := s.current()
	if log == nil {
		return nil, ErrUnreachable
	}
	return &stream{ctx: ctx, log: log, cut: cut, after: after, heartbeat: s.heartbeat}, nil
}

// Snapshot returns the log's materialized state.
func (s *Source) Snapshot(ctx context.Context) (*feed.State, error) {
	log, _ := s.current()
	if log == nil {
		return nil, ErrUnreachable
	}
	return log.State(), nil
}

type stream struct {
	ctx       context.Context
	log       *revoker.Log
	cut       <-chan struct{}
	heartbeat time.Duration

	after   uint64
	pending []*treatyv1.Event
	opened  bool
	nextHB  time.Time
}

func (st *stream) beat() *treatyv1.SubscribeResponse {
	st.nextHB = time.Now().Add(st.heartbeat)
	return &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{
		Epoch: st.log.Epoch(), HeadSequence: st.log.Head(),
	}}}
}

func (st *stream) Recv() (*treatyv1.SubscribeResponse, error) {
	for {
		select {
		case <-st.cut:
			return nil, ErrUnreachable
		case <-st.ctx.Done():
			return nil, st.ctx.Err()
		default:
		}
		if !st.opened {
			st.opened = true
			return st.beat(), nil
		}
		if len(st.pending) > 0 {
			ev := st.pending[0]
			st.pending = st.pending[1:]
			return &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}}, nil
		}
		if !time.Now().Before(st.nextHB) {
			return st.beat(), nil
		}
		changed := st.log.Changed() // before reading, so no append is missed
		evs, err := st.log.Read(st.after, 256)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			st.pending = evs
			st.after = evs[len(evs)-1].GetSequence()
			continue
		}
		t := time.NewTimer(time.Until(st.nextHB))
		select {
		case <-changed:
		case <-t.C:
		case <-st.cut:
		case <-st.ctx.Done():
		}
		t.Stop()
	}
}

// Start runs a PDP with cfg until the test ends, and waits for Run to return at cleanup.
func Start(tb testing.TB, cfg pdp.Config) *pdp.PDP {
	tb.Helper()
	p, err := pdp.New(cfg)
	if err != nil {
		tb.Fatalf("pdp.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			tb.Errorf("pdp.Run: %v", err)
		}
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return p
}

// WaitReady waits (up to 10 s) for p to be ready, failing the test otherwise.
func WaitReady(tb testing.TB, p *pdp.PDP) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		tb.Fatalf("pdp not ready (status %s, applied %d, head %d): %v", p.Status(), p.Applied(), p.Head(), err)
	}
}
