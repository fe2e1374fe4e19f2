package pdp_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	partnerK     = treatyv1.TargetKind_TARGET_KIND_PARTNER
	integrationK = treatyv1.TargetKind_TARGET_KIND_INTEGRATION
	workloadK    = treatyv1.TargetKind_TARGET_KIND_WORKLOAD
	credentialK  = treatyv1.TargetKind_TARGET_KIND_CREDENTIAL
	keyK         = treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY

	partnerActive     = treatyv1.PartnerState_PARTNER_STATE_ACTIVE
	integrationActive = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
	workloadActive    = treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE
)

// heartbeat is the test source's heartbeat interval: faster than the revoker's 1 s, so that tests
// waiting for a heartbeat run quickly.
const heartbeat = 50 * time.Millisecond

// env is a real revoker log followed by a real PDP through the in-process source, onboarded with
// partner acme, its integration acme-api (scopes read and write, audience api), its workload
// acme-bot, and the issuer key k1.
type env struct {
	log   *revoker.Log
	src   *pdptest.Source
	feed  *wrapSource // what the PDP follows: src, wrapped so tests can disturb it
	key   *pdptest.Key
	store store.Store
	pdp   *pdp.PDP
}

func newLog(t testing.TB) *revoker.Log {
	t.Helper()
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// onboard publishes acme's partner, integration, workload and the key into log.
func onboard(t testing.TB, log *revoker.Log, key *pdptest.Key) uint64 {
	t.Helper()
	return pdptest.Publish(t, log,
		pdptest.Partner("acme", partnerActive, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", integrationActive, []string{"read", "write"}, []string{"api"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", workloadActive),
		key.Published(t),
	)
}

// newEnv starts an onboarded env whose PDP is ready. cfg may set the PDP's bounds.
func newEnv(t testing.TB, cfg pdp.Config) *env {
	t.Helper()
	e := &env{log: newLog(t), key: pdptest.NewKey(t, "k1")}
	onboard(t, e.log, e.key)
	e.src = pdptest.NewSource(e.log, heartbeat)
	e.feed = &wrapSource{Source: e.src}
	e.store = storetest.OpenBolt(t, pdp.Schema)
	cfg.Store, cfg.Source = e.store, e.feed
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	e.pdp = pdptest.Start(t, cfg)
	pdptest.WaitReady(t, e.pdp)
	return e
}

// claims returns the claims of a valid token for acme-bot, at the current head.
func (e *env) claims() token.Claims {
	return pdptest.Claims("acme-bot", "acme-api", "acme", "read write", "api", e.log.Epoch(), e.log.Head())
}

// token mints a token for acme-bot, changed by edit.
func (e *env) token(t testing.TB, edit func(*token.Claims)) string {
	c := e.claims()
	if edit != nil {
		edit(&c)
	}
	return e.key.Mint(t, c)
}

// check asks the PDP, first waiting for everything the log holds to be applied.
func (e *env) check(t testing.TB, tok, action, resource string) pdp.Decision {
	t.Helper()
	d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: action, Resource: resource, MinSequence: e.log.Head()})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return d
}

// waitStatus waits (generously) until the PDP reports want.
func waitStatus(t testing.TB, p *pdp.PDP, want pdp.Status) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := p.StatusChanged()
		if p.Status() == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("status is %s after 10 s, want %s", p.Status(), want)
		}
	}
}

// reason returns a decision's single reason.
func reason(t testing.TB, d pdp.Decision) string {
	t.Helper()
	if len(d.Reasons) != 1 {
		t.Fatalf("decision has reasons %q, want exactly one", d.Reasons)
	}
	if d.Allow != (d.Reasons[0] == pdp.ReasonGranted) {
		t.Fatalf("decision allow=%v with reason %q", d.Allow, d.Reasons[0])
	}
	return d.Reasons[0]
}

// wrapSource wraps a source so that tests can see and disturb what the PDP receives.
type wrapSource struct {
	feed.Source

	mute atomic.Bool // drop every message, as a connection that hangs without closing

	mu        sync.Mutex
	afters    []uint64                                                      // the after of every successful Subscribe
	snapshots int                                                           // Snapshot calls
	gate      chan struct{}                                                 // if set, Snapshot waits until it is closed
	filter    func(*treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse // rewrites messages; nil drops
}

func (w *wrapSource) setFilter(f func(*treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filter = f
}

func (w *wrapSource) setGate(gate chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate = gate
}

func (w *wrapSource) subscriptions() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.afters)
}

func (w *wrapSource) snapshotCalls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snapshots
}

func (w *wrapSource) Subscribe(ctx context.Context, after uint64) (feed.Stream, error) {
	st, err := w.Source.Subscribe(ctx, after)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.afters = append(w.afters, after)
	w.mu.Unlock()
	return &wrapStream{w: w, inner: st}, nil
}

func (w *wrapSource) Snapshot(ctx context.Context) (*feed.State, error) {
	w.mu.Lock()
	w.snapshots++
	gate := w.gate
	w.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return w.Source.Snapshot(ctx)
}

type wrapStream struct {
	w     *wrapSource
	inner feed.Stream
}

func (s *wrapStream) Recv() (*treatyv1.SubscribeResponse, error) {
	for {
		m, err := s.inner.Recv()
		if err != nil {
			return nil, err
		}
		if s.w.mute.Load() {
			continue
		}
		s.w.mu.Lock()
		filter := s.w.filter
		s.w.mu.Unlock()
		if filter != nil {
			m = filter(m)
		}
		if m != nil {
			return m, nil
		}
	}
}

// testLogger sends the PDP's logs to the test's output, shown with -v or on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
