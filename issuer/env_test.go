package issuer_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store"
)

// The fixture world, onboarded through the real registry: partner acme with integration
// acme-billing and its workload acme-billing-sync (plus a sibling workload), and partner globex
// with globex-crm/globex-bot.
const (
	issuerURL   = "https://treaty.test"
	partner     = "acme"
	integration = "acme-billing"
	workload    = "acme-billing-sync"
	sibling     = "acme-billing-report"
	audience    = "https://api.acme.test"
)

var quiet = issuertest.Quiet

// recorder passes every request on to the real Authorizer and remembers it, so a test can check
// what the issuer asked the PDP (which kid, which min sequence). It never changes an answer.
type recorder struct {
	issuer.Authorizer

	mu    sync.Mutex
	calls []issuer.IssuanceRequest
}

func (r *recorder) AuthorizeIssuance(ctx context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	r.mu.Lock()
	r.calls = append(r.calls, req)
	r.mu.Unlock()
	return r.Authorizer.AuthorizeIssuance(ctx, req)
}

func (r *recorder) requests() []issuer.IssuanceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// faultyDirectory is the real registry's Directory with one answer altered, for the few registry
// states the registry's API cannot produce yet. Each use says which and why.
type faultyDirectory struct {
	issuer.Directory

	workload    func(*issuer.Workload)
	integration func(*issuer.Integration)
	partner     func(*issuer.Partner)
	err         error // if set, every lookup fails with it
}

func (d faultyDirectory) Workload(ctx context.Context, id string) (issuer.Workload, error) {
	return alter(ctx, d, d.Directory.Workload, id, d.workload)
}

func (d faultyDirectory) Integration(ctx context.Context, id string) (issuer.Integration, error) {
	return alter(ctx, d, d.Directory.Integration, id, d.integration)
}

func (d faultyDirectory) Partner(ctx context.Context, id string) (issuer.Partner, error) {
	return alter(ctx, d, d.Directory.Partner, id, d.partner)
}

func alter[T any](ctx context.Context, d faultyDirectory, get func(context.Context, string) (T, error), id string, edit func(*T)) (T, error) {
	if d.err != nil {
		var zero T
		return zero, d.err
	}
	v, err := get(ctx, id)
	if err == nil && edit != nil {
		edit(&v)
	}
	return v, err
}

// withDirectory wraps the real Directory of a config in a faultyDirectory.
func withDirectory(d faultyDirectory) func(*issuer.Config) {
	return func(c *issuer.Config) { d.Directory = c.Directory; c.Directory = d }
}

// env is an issuer over a real bbolt file whose neighbours are real: it looks clients up in a real
// registry, asks a real PDP, and its relay publishes into a real revoker, all over gRPC.
type env struct {
	t     testing.TB
	world *issuertest.World
	path  string
	cfg   issuer.Config
	clock *issuertest.Clock
	calls *recorder
	keys  map[string]ed25519.PrivateKey // workload -> its registered private key

	st        *store.Bolt
	relay     *outbox.Relay
	stopRelay func()
	iss       *issuer.Issuer
}

// newEnv onboards the fixture world and starts an issuer; edit may change the config first, for
// example to wrap the real Directory or point the Authorizer elsewhere.
func newEnv(t testing.TB, edit ...func(*issuer.Config)) *env {
	t.Helper()
	e := &env{
		t: t, world: issuertest.Start(t, issuertest.Config{}), path: filepath.Join(t.TempDir(), "issuer.db"),
		clock: &issuertest.Clock{}, keys: map[string]ed25519.PrivateKey{},
	}
	contract := time.Now().Add(90 * 24 * time.Hour)
	e.world.CreatePartner(partner, contract)
	e.world.CreatePartner("globex", contract)
	e.world.CreateIntegration(issuertest.Integration{
		ID: integration, PartnerID: partner, MaxTTL: time.Hour,
		Scopes: []string{"invoices:read", "invoices:write", "reports:read"}, Audiences: []string{audience, "https://other.acme.test"},
	})
	e.world.CreateIntegration(issuertest.Integration{
		ID: "globex-crm", PartnerID: "globex", MaxTTL: time.Hour, Scopes: []string{"crm:read"}, Audiences: []string{audience},
	})
	e.addWorkload(workload, integration)
	e.addWorkload(sibling, integration)
	e.addWorkload("globex-bot", "globex-crm")
	// The issuer's signing key is published after these writes, and every decision waits for the
	// key's sequence, so the PDP has applied the whole fixture world before it decides.
	e.calls = &recorder{Authorizer: e.world.Authorizer()}
	e.cfg = issuer.Config{
		Directory: e.world.Directory(), Authorizer: e.calls, IssuerURL: issuerURL, Now: e.clock.Now, Logger: quiet,
		DataDir: filepath.Dir(e.path), // the issuer generates its key-encryption key there
	}
	for _, fn := range edit {
		fn(&e.cfg)
	}
	e.start(true)
	t.Cleanup(e.stop)
	return e
}

// addWorkload registers a workload with a fresh Ed25519 key and returns the feed sequence of its
// creation.
func (e *env) addWorkload(id, integ string) uint64 {
	e.t.Helper()
	w := e.world.CreateWorkload(id, integ)
	e.keys[id] = w.Key
	return w.Sequence
}

// onboard registers a partner whose contract ends at contractEnd, with one integration (the
// fixture's scopes and audience, maxTTL) and one workload, and returns the workload's id and the
// feed sequence of its creation.
func (e *env) onboard(id string, contractEnd time.Time, maxTTL time.Duration) (string, uint64) {
	e.t.Helper()
	e.world.CreatePartner(id, contractEnd)
	e.world.CreateIntegration(issuertest.Integration{
		ID: id + "-integ", PartnerID: id, MaxTTL: maxTTL, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
	})
	return id + "-bot", e.addWorkload(id+"-bot", id+"-integ")
}

// start opens the store and the issuer; runRelay false leaves the outbox unpublished.
func (e *env) start(runRelay bool) {
	e.t.Helper()
	if err := e.tryStart(runRelay); err != nil {
		e.t.Fatal(err)
	}
}

// tryStart is start returning the issuer's error; on error everything is closed again.
func (e *env) tryStart(runRelay bool) error {
	e.t.Helper()
	st, err := store.OpenBolt(e.path, issuer.Schema)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.relay = outbox.NewRelay(st, e.world.Publisher(), quiet)
	e.stopRelay = func() {}
	if runRelay {
		e.runRelay()
	}
	cfg := e.cfg
	cfg.Store, cfg.Relay = st, e.relay
	if e.iss, err = issuer.New(cfg); err != nil {
		e.stopRelay()
		st.Close()
		e.st = nil
		return err
	}
	return nil
}

// runRelay starts publishing the outbox.
func (e *env) runRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.relay.Run(ctx) }()
	e.stopRelay = func() { cancel(); <-done }
}

// stop closes the issuer, the relay and the store, checking the file's consistency.
func (e *env) stop() {
	if e.st == nil {
		return
	}
	e.iss.Close()
	e.stopRelay()
	if err := e.st.Check(); err != nil {
		e.t.Errorf("issuer store failed its consistency check: %v", err)
	}
	if err := e.st.Close(); err != nil {
		e.t.Errorf("close issuer store: %v", err)
	}
	e.st = nil
}

// reopen restarts the issuer on the same file, as after a process restart.
func (e *env) reopen() {
	e.t.Helper()
	e.stop()
	e.start(true)
}

// assertion signs a valid client assertion for id with its registered key.
func (e *env) assertion(id string) string {
	e.t.Helper()
	a, err := issuer.SignAssertion(id, issuerURL, e.keys[id], e.clock.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// request is a valid request for workload, with a fresh assertion.
func (e *env) request() issuer.Request {
	return e.requestAs(workload)
}

// requestAs is a valid request for workload id, with a fresh assertion.
func (e *env) requestAs(id string) issuer.Request {
	return issuer.Request{Assertion: e.assertion(id), Scopes: []string{"invoices:read"}, Audience: audience}
}

// issue issues and fails the test on error.
func (e *env) issue(req issuer.Request) issuer.Issued {
	e.t.Helper()
	out, err := e.iss.Issue(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Issue: %v", err)
	}
	return out
}

// activeKey returns the active signing key, waiting for its publication.
func (e *env) activeKey() issuer.SigningKey {
	e.t.Helper()
	return waitKey(e.t, e.iss, "published active", func(k issuer.SigningKey) bool { return k.Active && k.PublishedSequence != 0 })
}

// waitKey waits up to 10 s until iss lists a signing key that match accepts, and returns it.
func waitKey(t testing.TB, iss *issuer.Issuer, what string, match func(issuer.SigningKey) bool) issuer.SigningKey {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := iss.SigningKeys()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if match(k) {
				return k
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s key among %+v", what, keys)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantKind fails the test unless err is of kind want.
func wantKind(t *testing.T, err error, want fail.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %v", want)
	}
	if got := fail.KindOf(err); got != want {
		t.Fatalf("error %q has kind %v, want %v", err, got, want)
	}
}

// keyEvents returns the SigningKeyPublished events in the revoker's feed.
func keyEvents(t *testing.T, w *issuertest.World) []*treatyv1.SigningKeyPublished {
	t.Helper()
	var out []*treatyv1.SigningKeyPublished
	for _, ev := range w.Events() {
		if p := ev.GetSigningKeyPublished(); p != nil {
			out = append(out, p)
		}
	}
	return out
}
