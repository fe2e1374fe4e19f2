package registry_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

// now is the registry's clock in these tests; contract ends are set relative to it.
var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// switchPublisher is the real revoker behind a switch that can make it unreachable.
type switchPublisher struct {
	next outbox.Publisher
	down atomic.Bool
}

func (p *switchPublisher) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	if p.down.Load() {
		return nil, errors.New("revoker unreachable (injected by the test)")
	}
	return p.next.Publish(ctx, entries)
}

// node is a running registry: its store, relay and domain handle.
type node struct {
	reg   *registry.Registry
	relay *outbox.Relay
	stop  func()
	// beforeStop run when the node stops, before its relay and store.
	beforeStop []func()
}

// env is a registry publishing into a real in-process revoker.
type env struct {
	*node
	rev *revoker.Log
	pub *switchPublisher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := newRevoker(t)
	e.node = startNode(t, filepath.Join(t.TempDir(), "registry.db"), e.pub)
	return e
}

func newRevoker(t *testing.T) *env {
	t.Helper()
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{rev: rev, pub: &switchPublisher{next: rev}}
}

// startNode opens the registry store at path and runs a relay over it. stop ends the relay and
// closes the store after checking its integrity; it also runs at cleanup.
// opts edit the registry's Config before it is created.
func startNode(t *testing.T, path string, pub outbox.Publisher, opts ...func(*registry.Config)) *node {
	t.Helper()
	st, err := store.OpenBolt(path, registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	return newNode(t, st, pub, opts...)
}

// newNode runs a registry and a relay over st, with a publish timeout of 300 ms unless opts say
// otherwise. stop ends the relay and closes the store (checking a bbolt file's integrity first);
// it also runs at cleanup.
func newNode(t *testing.T, st store.Store, pub outbox.Publisher, opts ...func(*registry.Config)) *node {
	t.Helper()
	relay, stopRelay := runRelay(st, pub)
	cfg := registry.Config{
		Store: st, Relay: relay, Now: func() time.Time { return now }, Logger: quiet,
		PublishTimeout: 300 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{reg: reg, relay: relay}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			for _, f := range n.beforeStop {
				f()
			}
			stopRelay()
			if b, ok := st.(*store.Bolt); ok {
				if err := b.Check(); err != nil {
					t.Errorf("registry store failed its consistency check: %v", err)
				}
			}
			st.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// runScheduler runs the registry's contract-end scheduler until the node stops.
func (n *node) runScheduler() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.reg.Run(ctx); close(done) }()
	n.beforeStop = append(n.beforeStop, func() { cancel(); <-done })
}

var quiet = slog.New(slog.DiscardHandler)

// runRelay runs a relay over st until the returned stop is called.
func runRelay(st store.Store, pub outbox.Publisher) (*outbox.Relay, func()) {
	relay := outbox.NewRelay(st, pub, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	return relay, func() { cancel(); <-done }
}

// storeFor opens a registry store in a temp folder, checked and closed at cleanup.
func storeFor(t *testing.T) *store.Bolt { return storetest.OpenBolt(t, registry.Schema) }

// relayFor runs a relay over st until cleanup (before st is closed).
func relayFor(t *testing.T, st store.Store, pub outbox.Publisher) *outbox.Relay {
	relay, stop := runRelay(st, pub)
	t.Cleanup(stop)
	return relay
}

// waitHead waits until the revoker's feed reaches seq.
func (e *env) waitHead(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		changed := e.rev.Changed()
		if e.rev.Head() >= seq {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the feed is at %d after 15s, want %d", e.rev.Head(), seq)
		}
	}
}

// event returns the feed event at seq.
func (e *env) event(t *testing.T, seq uint64) *treatyv1.Event {
	t.Helper()
	evs, err := e.rev.Read(seq-1, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read event %d: %v (%d events)", seq, err, len(evs))
	}
	return evs[0]
}

func partner(id string) registry.Partner {
	return registry.Partner{ID: id, DisplayName: "Partner " + id, OwnerTeam: "platform-security", ContractEnd: now.Add(365 * 24 * time.Hour)}
}

func integration(id, partnerID string) registry.Integration {
	return registry.Integration{ID: id, PartnerID: partnerID, AllowedScopes: []string{"orders:read", "orders:write"},
		Audiences: []string{"https://api.example.com"}, MaxTTL: 15 * time.Minute, Environment: "production"}
}

// prefixes compares netip.Prefix values (whose fields are unexported) by value.
var prefixes = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// active is the one-step shortcut: tests that need a usable partner or integration create it
// approved and active.
var active = registry.CreateOptions{Activate: true, ApprovedBy: "test"}

func (e *env) mustPartner(t *testing.T, id string) registry.Partner {
	t.Helper()
	p, _, err := e.reg.CreatePartner(context.Background(), partner(id), "alice", active)
	if err != nil {
		t.Fatalf("create partner %s: %v", id, err)
	}
	return p
}

func (e *env) mustIntegration(t *testing.T, id, partnerID string) registry.Integration {
	t.Helper()
	i, _, err := e.reg.CreateIntegration(context.Background(), integration(id, partnerID), "alice", active)
	if err != nil {
		t.Fatalf("create integration %s: %v", id, err)
	}
	return i
}

func (e *env) mustWorkload(t *testing.T, id, integrationID string) registry.Workload {
	t.Helper()
	w, _, err := e.reg.CreateWorkload(context.Background(), id, integrationID, publicKeyPEM(t), "", "alice")
	if err != nil {
		t.Fatalf("create workload %s: %v", id, err)
	}
	return w
}

// publicKeyPEM returns a fresh Ed25519 public key as PKIX PEM.
func publicKeyPEM(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", pub)
}

func pemOf(t testing.TB, typ string, key any) string {
	t.Helper()
	var der []byte
	var err error
	if typ == "PUBLIC KEY" {
		der, err = x509.MarshalPKIXPublicKey(key)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// checkErr fails unless err has the wanted kind and, for Invalid errors, names field.
func checkErr(t *testing.T, err error, kind fail.Kind, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %d (field %q)", kind, field)
	}
	if got := fail.KindOf(err); got != kind {
		t.Fatalf("error %q has kind %d, want %d", err, got, kind)
	}
	var fe *fail.Error
	if errors.As(err, &fe) && fe.Field != field {
		t.Fatalf("error %q names field %q, want %q", err, fe.Field, field)
	}
}
