package issuer_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// replica is one issuer replica on the shared etcd store: its own etcd client, store, relay (into
// the world's revoker) and clock.
type replica struct {
	t         *testing.T
	e         *env
	iss       *issuer.Issuer
	clock     *issuertest.Clock
	stopRelay func() // idempotent
}

// startReplicas starts two issuer replicas, one after the other, sharing one issuer store (see
// replicaStarter).
func startReplicas(t *testing.T, edit func(*env, *issuer.Config)) (e *env, a, b *replica) {
	t.Helper()
	e, start := replicaStarter(t, edit)
	for _, r := range []**replica{&a, &b} {
		var err error
		if *r, err = start(); err != nil {
			t.Fatal(err)
		}
	}
	return e, a, b
}

// replicaStarter returns a function that starts an issuer replica on an issuer store that every
// replica it starts shares, on a three-member etcd cluster, beside the fixture world of newEnv
// (whose own bbolt issuer plays no part), with one key-encryption key, as a deployment gives
// every replica the same --kek-file. edit may change the replicas' config, and the function's
// edits one replica's. The function may be called from any goroutine.
func replicaStarter(t *testing.T, edit func(*env, *issuer.Config)) (*env, func(...func(*issuer.Config)) (*replica, error)) {
	t.Helper()
	e := newEnv(t)
	c := etcdtest.Start(t, 3)
	kek := filepath.Join(t.TempDir(), "issuer.kek")
	if err := os.WriteFile(kek, randomBytes(32), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Authorizer, cfg.DataDir, cfg.KEKFile = e.world.Authorizer(), "", kek
	if edit != nil {
		edit(e, &cfg)
	}
	cli := c.Client()
	return e, func(edits ...func(*issuer.Config)) (*replica, error) {
		st, err := etcdstore.Open(cli, "/treaty/issuer", issuer.Schema)
		if err != nil {
			return nil, err
		}
		relay := outbox.NewRelay(st, e.world.Publisher(), quiet)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); relay.Run(ctx) }()
		r := &replica{t: t, e: e, clock: &issuertest.Clock{}, stopRelay: sync.OnceFunc(func() { cancel(); <-done })}
		cfg := cfg
		cfg.Store, cfg.Relay, cfg.Now = st, relay, r.clock.Now
		for _, edit := range edits {
			edit(&cfg)
		}
		if r.iss, err = issuer.New(cfg); err != nil {
			r.stopRelay()
			st.Close()
			return nil, err
		}
		t.Cleanup(func() {
			r.iss.Close()
			r.stopRelay()
			st.Close()
		})
		return r, nil
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// issue issues a credential for the fixture workload through r, with a fresh assertion.
func (r *replica) issue() issuer.Issued {
	r.t.Helper()
	out, err := r.iss.Issue(context.Background(), r.request())
	if err != nil {
		r.t.Fatalf("Issue: %v", err)
	}
	return out
}

func (r *replica) request() issuer.Request {
	r.t.Helper()
	a, err := issuer.SignAssertion(workload, issuerURL, r.e.keys[workload], r.clock.Now(), time.Minute)
	if err != nil {
		r.t.Fatal(err)
	}
	return issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience}
}

// published waits until the store holds a published key in state want, other than except, and
// returns its kid.
func (r *replica) published(want issuer.KeyState, except ...string) string {
	r.t.Helper()
	return waitKey(r.t, r.iss, fmt.Sprintf("published %s (but %v)", want, except), func(k issuer.SigningKey) bool {
		return k.State == want && k.PublishedSequence != 0 && !slices.Contains(except, k.Kid)
	}).Kid
}

// holds waits until r signs with active and holds next in memory.
func (r *replica) holds(active, next string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, n := issuer.SignerKids(r.iss)
		if a == active && n == next {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the replica holds active %q, next %q; want %q, %q", a, n, active, next)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *replica) jwks() []string {
	r.t.Helper()
	raw, err := r.iss.JWKS()
	if err != nil {
		r.t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		r.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestReplicasStartTogether: replicas opening a new store at once both find no key; one stores
// its new key, the other's transaction conflicts, runs again and takes that key up instead.
func TestReplicasStartTogether(t *testing.T) {
	_, start := replicaStarter(t, nil)
	var (
		wg   sync.WaitGroup
		reps [2]*replica
		errs [2]error
	)
	for n := range reps {
		wg.Go(func() { reps[n], errs[n] = start() })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	active := reps[0].published(issuer.KeyActive)
	keys, err := reps[1].iss.SigningKeys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the store holds %d signing keys (%v), want 1", len(keys), err)
	}
	for _, r := range reps {
		r.holds(active, "")
		if out := r.issue(); out.Credential.Kid != active {
			t.Fatalf("signed with %s, want %s", out.Credential.Kid, active)
		}
	}
}

// TestReplicasFollowRotation: a rotation that replica A's schedule makes is taken up by replica B,
// whose own schedule never falls due (its clock stays an hour behind A's): B holds the next key
// once A has published it, and signs with it once A has promoted it, its publication learned
// from the store that A recorded it in.
func TestReplicasFollowRotation(t *testing.T) {
	e, a, b := startReplicas(t, func(_ *env, c *issuer.Config) { c.KeyRotation, c.KeyPrepublish = time.Hour, 10*time.Minute })
	first := a.published(issuer.KeyActive)
	b.holds(first, "")
	if out := b.issue(); out.Credential.Kid != first {
		t.Fatalf("B signed with %s, want %s", out.Credential.Kid, first)
	}

	a.clock.Advance(50*time.Minute + time.Second) // the next key is due
	if err := issuer.Tick(a.iss); err != nil {
		t.Fatal(err)
	}
	next := a.published(issuer.KeyNext)
	b.holds(first, next)
	wantKids(t, "B's JWKS", b.jwks(), first, next)

	a.clock.Advance(10*time.Minute + time.Second) // the next key takes over
	if err := issuer.Tick(a.iss); err != nil {
		t.Fatal(err)
	}
	b.holds(next, "")
	out := b.issue()
	if out.Credential.Kid != next {
		t.Fatalf("B signed with %s after A's rotation, want %s", out.Credential.Kid, next)
	}
	if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
		t.Fatalf("the PDP says %s for B's token", got)
	}
	wantKids(t, "B's JWKS after the rotation", b.jwks(), next, first)
}

// TestReplicasRevokeActiveKey: both replicas follow the feed and act on the revocation of the
// active key; they converge on one new active key, and neither signs with the revoked one again.
func TestReplicasRevokeActiveKey(t *testing.T) {
	e, a, b := startReplicas(t, func(e *env, c *issuer.Config) { c.Feed = revokersvc.NewSource(e.world.Conn()) })
	revoked := a.published(issuer.KeyActive)
	b.holds(revoked, "")
	seq := e.world.RevokeSigningKey(revoked)

	fresh := a.published(issuer.KeyActive, revoked)
	a.holds(fresh, "")
	b.holds(fresh, "")
	keys, err := b.iss.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !slices.ContainsFunc(keys, func(k issuer.SigningKey) bool { return k.Kid == revoked && k.Revoked }) {
		t.Fatalf("keys %+v; want the revoked key and one new active key", keys)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		out := r.issue()
		if out.Credential.Kid != fresh {
			t.Fatalf("%s signed with %s, want %s", name, out.Credential.Kid, fresh)
		}
		if got := e.world.Check(out.Token, "invoices:read", audience, seq); got != "granted" {
			t.Fatalf("the PDP says %s for %s's token", got, name)
		}
	}
}

// TestReplicasLearnPublicationFromFeed: only the relay that publishes an outbox entry learns its
// sequence, and replicas share one outbox, so another replica's relay may publish a key that A
// queued. A, its relay stopped here so that B's relay publishes all it queues, still learns from
// the feed that its next key is published, and the key takes its turn.
func TestReplicasLearnPublicationFromFeed(t *testing.T) {
	e, a, b := startReplicas(t, func(e *env, c *issuer.Config) {
		c.KeyRotation, c.KeyPrepublish = time.Hour, 10*time.Minute
		c.Feed = revokersvc.NewSource(e.world.Conn())
	})
	first := a.published(issuer.KeyActive)
	a.stopRelay()

	a.clock.Advance(50*time.Minute + time.Second) // the next key is due
	if err := issuer.Tick(a.iss); err != nil {
		t.Fatal(err)
	}
	next := a.published(issuer.KeyNext)
	a.clock.Advance(10*time.Minute + time.Second) // the next key takes over
	if err := issuer.Tick(a.iss); err != nil {
		t.Fatal(err)
	}
	a.holds(next, "")
	b.holds(next, "")
	out := b.issue()
	if out.Credential.Kid != next {
		t.Fatalf("B signed with %s, want %s (after %s)", out.Credential.Kid, next, first)
	}
	if got := e.world.Check(out.Token, "invoices:read", audience, 0); got != "granted" {
		t.Fatalf("the PDP says %s for B's token", got)
	}
}

// TestReplicasShareAssertionsAndInventory: the replay cache and the inventory live in the shared
// store, so an assertion used at one replica is refused at the other, and a credential minted
// through one is listed by the other.
func TestReplicasShareAssertionsAndInventory(t *testing.T) {
	_, a, b := startReplicas(t, nil)
	req := a.request()
	out, err := a.iss.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.iss.Issue(context.Background(), req)
	wantKind(t, err, fail.Unauthenticated)

	creds, _, err := b.iss.ListCredentials(issuer.Filter{WorkloadID: workload}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(creds, func(c issuer.Credential) bool { return c.ID == out.Credential.ID }) {
		t.Fatalf("B lists %d credentials without %s, minted through A", len(creds), out.Credential.ID)
	}
}

// A replica configured with another issuer identifier (a trailing slash) replaces the shared key
// with one bound to its identifier; the first replica does not take that key up (its tokens would
// all be denied as signed by a key of another issuer) but keeps signing with its own, which stays
// published until its tokens expire, and says what is wrong.
func TestReplicaOfAnotherIssuer(t *testing.T) {
	_, start := replicaStarter(t, nil)
	a, err := start()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := issuer.SignerKids(a.iss)
	b, err := start(func(c *issuer.Config) { c.IssuerURL += "/" })
	if err != nil {
		t.Fatal(err)
	}
	other, _ := issuer.SignerKids(b.iss)
	if other == before {
		t.Fatalf("the replica of another issuer signs with the first's key %s", before)
	}
	time.Sleep(2500 * time.Millisecond) // past the watch and two safety-net resyncs
	if now, _ := issuer.SignerKids(a.iss); now != before {
		t.Fatalf("the first replica took up %s, the key of issuer %q (it had %s)", now, b.iss.IssuerURL(), before)
	}
	if out := a.issue(); out.Credential.ID == "" {
		t.Fatal("the first replica stopped issuing")
	}
}
