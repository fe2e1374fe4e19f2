package issuer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The fixture world: partner acme with integration acme-billing and its workload
// acme-billing-sync (plus a sibling workload), and partner globex with globex-crm/globex-bot.
const (
	issuerURL   = "https://treaty.test"
	partner     = "acme"
	integration = "acme-billing"
	workload    = "acme-billing-sync"
	sibling     = "acme-billing-report"
	audience    = "https://api.acme.test"
)

// directory is an in-memory issuer.Directory.
type directory struct {
	mu           sync.Mutex
	workloads    map[string]issuer.Workload
	integrations map[string]issuer.Integration
	partners     map[string]issuer.Partner
	err          error // if set, every lookup fails with it
}

func (d *directory) Workload(_ context.Context, id string) (issuer.Workload, error) {
	return lookup(d, d.workloads, "workload", id)
}

func (d *directory) Integration(_ context.Context, id string) (issuer.Integration, error) {
	return lookup(d, d.integrations, "integration", id)
}

func (d *directory) Partner(_ context.Context, id string) (issuer.Partner, error) {
	return lookup(d, d.partners, "partner", id)
}

func lookup[T any](d *directory, m map[string]T, kind, id string) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var zero T
	if d.err != nil {
		return zero, d.err
	}
	v, ok := m[id]
	if !ok {
		return zero, fail.NotFoundf("%s %q not found", kind, id)
	}
	return v, nil
}

// edit changes the directory under its lock.
func (d *directory) edit(fn func(d *directory)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn(d)
}

// authorizer is an issuer.Authorizer that decides from the real revoker's feed state: it denies
// "syncing" below MinSequence, "key_revoked" for revoked keys, "unknown_key" for keys the feed
// does not know, and configured reasons for configured workloads; else it allows at the head.
type authorizer struct {
	log *revoker.Log

	mu    sync.Mutex
	deny  map[string][]string // workload -> reasons
	err   error
	calls []issuer.IssuanceRequest
}

func (a *authorizer) AuthorizeIssuance(_ context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, req)
	if a.err != nil {
		return issuer.IssuanceDecision{}, a.err
	}
	st := a.log.State()
	deny := func(reasons ...string) (issuer.IssuanceDecision, error) {
		return issuer.IssuanceDecision{Reasons: reasons, DecisionID: "d-deny", Sequence: st.Sequence()}, nil
	}
	if st.Sequence() < req.MinSequence {
		return deny("syncing")
	}
	if reasons, ok := a.deny[req.WorkloadID]; ok {
		return deny(reasons...)
	}
	k, ok := st.SigningKey(req.Kid)
	switch {
	case !ok:
		return deny("unknown_key")
	case k.Revoked():
		return deny("key_revoked")
	}
	return issuer.IssuanceDecision{Allow: true, Reasons: []string{"granted"}, DecisionID: "d-allow", Sequence: st.Sequence()}, nil
}

func (a *authorizer) set(fn func(a *authorizer)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

func (a *authorizer) requests() []issuer.IssuanceRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// clock is a settable clock: real time plus an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is an issuer over a real bbolt file, publishing through a real relay into a real revoker.
type env struct {
	t     *testing.T
	path  string
	cfg   issuer.Config
	clock *clock
	dir   *directory
	authz *authorizer
	rlog  *revoker.Log
	keys  map[string]ed25519.PrivateKey // workload -> its registered private key

	st        *store.Bolt
	relay     *outbox.Relay
	stopRelay func()
	iss       *issuer.Issuer
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newEnv builds the fixture world and starts an issuer; edit may change the config first.
func newEnv(t *testing.T, edit ...func(*issuer.Config)) *env {
	t.Helper()
	rlog, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t: t, path: filepath.Join(t.TempDir(), "issuer.db"), clock: &clock{}, rlog: rlog,
		authz: &authorizer{log: rlog, deny: map[string][]string{}},
		keys:  map[string]ed25519.PrivateKey{},
	}
	e.dir = &directory{
		workloads: map[string]issuer.Workload{},
		integrations: map[string]issuer.Integration{
			integration: {ID: integration, PartnerID: partner, Active: true, MaxTTL: time.Hour,
				AllowedScopes: []string{"invoices:read", "invoices:write", "reports:read"}, Audiences: []string{audience, "https://other.acme.test"}},
			"globex-crm": {ID: "globex-crm", PartnerID: "globex", Active: true, MaxTTL: time.Hour,
				AllowedScopes: []string{"crm:read"}, Audiences: []string{audience}},
		},
		partners: map[string]issuer.Partner{
			partner:  {ID: partner, Active: true, ContractEnd: time.Now().Add(90 * 24 * time.Hour)},
			"globex": {ID: "globex", Active: true, ContractEnd: time.Now().Add(90 * 24 * time.Hour)},
		},
	}
	e.addWorkload(workload, integration, partner)
	e.addWorkload(sibling, integration, partner)
	e.addWorkload("globex-bot", "globex-crm", "globex")
	e.cfg = issuer.Config{
		Directory: e.dir, Authorizer: e.authz, IssuerURL: issuerURL, Now: e.clock.Now, Logger: quiet,
	}
	for _, fn := range edit {
		fn(&e.cfg)
	}
	e.start(true)
	t.Cleanup(e.stop)
	return e
}

// addWorkload registers a workload with a fresh Ed25519 key.
func (e *env) addWorkload(id, integ, partner string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	kid, err := issuer.KeyID(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	e.keys[id] = priv
	e.dir.edit(func(d *directory) {
		d.workloads[id] = issuer.Workload{ID: id, IntegrationID: integ, PartnerID: partner, Active: true,
			Keys: []issuer.WorkloadKey{{KeyID: kid, Algorithm: "EdDSA", Public: pub}}}
	})
}

// start opens the store and the issuer; runRelay false leaves the outbox unpublished.
func (e *env) start(runRelay bool) {
	e.t.Helper()
	st, err := store.OpenBolt(e.path, issuer.Schema)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.relay = outbox.NewRelay(st, e.rlog, quiet)
	e.stopRelay = func() {}
	if runRelay {
		e.runRelay()
	}
	cfg := e.cfg
	cfg.Store, cfg.Relay = st, e.relay
	if e.iss, err = issuer.New(cfg); err != nil {
		e.t.Fatal(err)
	}
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
	return issuer.Request{Assertion: e.assertion(workload), Scopes: []string{"invoices:read"}, Audience: audience}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := e.iss.SigningKeys()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, k := range keys {
			if k.Active && k.PublishedSequence != 0 {
				return k
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no published active key: %+v", keys)
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
func keyEvents(t *testing.T, rlog *revoker.Log) []*treatyv1.SigningKeyPublished {
	t.Helper()
	evs, err := rlog.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []*treatyv1.SigningKeyPublished
	for _, ev := range evs {
		if p := ev.GetSigningKeyPublished(); p != nil {
			out = append(out, p)
		}
	}
	return out
}

var errPeerDown = fail.Unavailablef(errors.New("connection refused"), "peer unavailable")
