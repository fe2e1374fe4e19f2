package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// startReplica runs a registry replica on the shared etcd prefix: its own client, store, relay
// and contract-end scheduler, as one process of several would. It stops at cleanup.
func startReplica(t *testing.T, c *etcdtest.Cluster, pub outbox.Publisher, opts ...func(*registry.Config)) *node {
	t.Helper()
	st, err := etcdstore.Open(c.Client(), "/treaty/registry", registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	// A write that is never confirmed fails the test.
	long := func(c *registry.Config) { c.PublishTimeout = 15 * time.Second }
	n := newNode(t, st, pub, append([]func(*registry.Config){long}, opts...)...)
	n.runScheduler()
	return n
}

// slowPublisher is a replica's link to the revoker with some latency.
type slowPublisher struct {
	next  outbox.Publisher
	delay time.Duration
}

func (p slowPublisher) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.next.Publish(ctx, entries)
}

// TestReplicasShareOneFeed: two registry replicas on one etcd store write concurrently, each
// partner through one replica and its integration through the other. The first replica's link to
// the revoker is slow, so the second's relay often publishes and dequeues the first's entries
// before the first's relay reads them. Every write succeeds with the sequence of its own event
// (whichever replica's relay published it), and the feed is gap-free and holds every change once.
func TestReplicasShareOneFeed(t *testing.T) {
	c := etcdtest.Start(t, 3)
	e := newRevoker(t)
	replicas := []*node{startReplica(t, c, slowPublisher{e.pub, 50 * time.Millisecond}), startReplica(t, c, e.pub)}

	const workers, each = 4, 6 // per replica; two writes each
	var mu sync.Mutex
	wrote := map[string]uint64{} // the target each write changed -> the sequence it returned
	record := func(target string, seq uint64) {
		mu.Lock()
		defer mu.Unlock()
		wrote[target] = seq
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	ctx := context.Background()
	for i, rep := range replicas {
		other := replicas[1-i]
		for w := range workers {
			wg.Go(func() {
				for n := range each {
					id := fmt.Sprintf("p%d-%d-%d", i, w, n)
					_, seq, err := rep.reg.CreatePartner(ctx, partner(id), "alice", active)
					if err != nil {
						errs <- fmt.Errorf("replica %d: create partner %s: %w", i, id, err)
						return
					}
					record("partner/"+id, seq)
					_, seq, err = other.reg.CreateIntegration(ctx, integration("i-"+id, id), "alice", active)
					if err != nil {
						errs <- fmt.Errorf("replica %d: create integration i-%s: %w", 1-i, id, err)
						return
					}
					record("integration/i-"+id, seq)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	const total = 2 * 2 * workers * each
	evs, err := e.rev.Read(0, 2*total)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, ev := range evs {
		got := describe(ev)
		var kind, target string
		fmt.Sscan(got, &kind, &target)
		switch seq, ok := wrote[target]; {
		case ev.GetSequence() != uint64(i+1):
			t.Fatalf("event %d of the feed has sequence %d: a gap or a duplicate", i+1, ev.GetSequence())
		case !ok:
			t.Fatalf("event %d (%s) is no write's", ev.GetSequence(), got)
		case seen[target]:
			t.Fatalf("event %d (%s) is in the feed twice", ev.GetSequence(), got)
		case seq != ev.GetSequence():
			t.Fatalf("the write of %s returned sequence %d, but its event is at %d", target, seq, ev.GetSequence())
		}
		seen[target] = true
	}
	if len(evs) != total || len(seen) != len(wrote) {
		t.Fatalf("the feed holds %d events for %d writes; want one each", len(evs), len(wrote))
	}
	for i, rep := range replicas {
		if n, err := rep.relay.Pending(); err != nil || n != 0 {
			t.Fatalf("replica %d: %d entries pending (%v); want none", i, n, err)
		}
	}
}

// noCredentials is an issuer inventory in which the partners have no credentials, so an
// offboarding has nothing to revoke and confirms at once. (The issuer's side runs for real in
// services/issuersvc and the end-to-end tests.)
type noCredentials struct{}

func (noCredentials) LiveCredentials(context.Context, string, string) ([]string, string, error) {
	return nil, "", nil
}

func (noCredentials) CountLive(_ context.Context, _ string, applied uint64) (uint64, uint64, error) {
	return 0, applied, nil
}

func (noCredentials) RevokeCredential(context.Context, string, string, string, string) (uint64, bool, error) {
	return 0, false, errors.New("no credential to revoke in this test")
}

// TestReplicasOffboardOnce: both replicas offboard the same partners at once, as their
// contract-end schedulers do when a contract ends. Each offboarding finishes (a replica that finds
// the other ahead of it stops, and a retry resumes from the stored record), every step is done and
// audited once, and the feed holds each change once.
func TestReplicasOffboardOnce(t *testing.T) {
	c := etcdtest.Start(t, 3)
	e := newRevoker(t)
	withInventory := func(cfg *registry.Config) { cfg.Revoker, cfg.Inventory = noCredentials{}, noCredentials{} }
	replicas := []*node{startReplica(t, c, e.pub, withInventory), startReplica(t, c, e.pub, withInventory)}
	e.node = replicas[0]
	const partners, integrations = 3, 3
	for p := range partners {
		id := fmt.Sprintf("acme%d", p)
		e.mustPartner(t, id)
		for i := range integrations {
			e.mustIntegration(t, fmt.Sprintf("%s-i%d", id, i), id)
		}
	}
	start := e.rev.Head()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*partners)
	for i, rep := range replicas {
		for p := range partners {
			id := fmt.Sprintf("acme%d", p)
			wg.Go(func() {
				for try := 0; ; try++ {
					o, err := rep.reg.Offboard(ctx, id, "contract over", "bob", nil)
					if err == nil && o.Step == treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED {
						return
					}
					if try == 20 || ctx.Err() != nil {
						errs <- fmt.Errorf("replica %d: offboard %s: %v (step %s)", i, id, err, o.Step)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for p := range partners {
		id := fmt.Sprintf("acme%d", p)
		o, err := e.reg.GetOffboarding(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Step != treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED || o.RetiredIntegrations != integrations {
			t.Errorf("%s: offboarding record at step %s with %d integrations retired; want TERMINATED and %d",
				id, o.Step, o.RetiredIntegrations, integrations)
		}
		recs, _, err := e.reg.QueryAudit(ctx, registry.AuditQuery{Target: "partner/" + id, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, rec := range recs {
			actions = append(actions, rec.Action)
		}
		want := []string{"partner.create", "partner.offboard.start", "partner.offboard.revoked", "partner.offboard.confirmed", "partner.terminate"}
		if !slices.Equal(actions, want) {
			t.Errorf("%s: audit trail %q, want %q", id, actions, want)
		}
	}

	// Per partner: OFFBOARDING, its block, per integration its retirement and block, TERMINATED.
	const perPartner = 3 + 2*integrations
	e.waitHead(t, start+partners*perPartner)
	evs, err := e.rev.Read(start, 2*partners*perPartner)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		d := describe(ev)
		if ev.GetPartnerChanged() != nil {
			d += " " + ev.GetPartnerChanged().GetState().String()
		}
		if seen[d] {
			t.Errorf("event %d (%s) is in the feed twice", ev.GetSequence(), d)
		}
		seen[d] = true
	}
	if len(evs) != partners*perPartner {
		t.Errorf("the offboardings appended %d events, want %d: %v", len(evs), partners*perPartner, seen)
	}
}
