package registry_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

// snapshot is everything a registry can be asked.
type snapshot struct {
	Partners     []registry.Partner
	Integrations []registry.Integration
	Workloads    []registry.Workload
	Audit        []registry.AuditRecord
}

func takeSnapshot(t *testing.T, reg *registry.Registry) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Partners, _, err = reg.ListPartners(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	if s.Integrations, _, err = reg.ListIntegrations(ctx, "", 0, ""); err != nil {
		t.Fatal(err)
	}
	if s.Workloads, _, err = reg.ListWorkloads(ctx, "", 0, ""); err != nil {
		t.Fatal(err)
	}
	if s.Audit, err = reg.ListAudit(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRestartKeepsEverything(t *testing.T) {
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	e.node = startNode(t, path, e.pub)
	e.mustPartner(t, "acme")
	e.mustPartner(t, "globex")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")
	if _, _, err := e.reg.SuspendPartner(context.Background(), "globex", "review", "bob"); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, e.reg)
	e.stop()

	e.node = startNode(t, path, e.pub)
	if diff := cmp.Diff(before, takeSnapshot(t, e.reg)); diff != "" {
		t.Fatalf("after restart (-before +after):\n%s", diff)
	}
	// Ids stay unique and writes keep publishing, with sequences that are theirs.
	_, _, err := e.reg.CreatePartner(context.Background(), partner("acme"), "alice", active)
	checkErr(t, err, fail.AlreadyExists, "")
	head := e.rev.Head()
	_, seq, err := e.reg.CreatePartner(context.Background(), partner("initech"), "alice", active)
	if err != nil || seq != head+1 || e.event(t, seq).GetPartnerChanged().GetPartnerId() != "initech" {
		t.Fatalf("create after restart: sequence %d, %v; want %d", seq, err, head+1)
	}
	if recs, _ := e.reg.ListAudit(context.Background(), 0, 0); len(recs) != len(before.Audit)+1 {
		t.Errorf("%d audit records after one more write, want %d", len(recs), len(before.Audit)+1)
	}
}

func TestWriteWhileRevokerDownIsDurableAndPublishedLater(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	head := e.rev.Head()

	e.pub.down.Store(true)
	p, seq, err := e.reg.CreatePartner(ctx, partner("globex"), "alice", active)
	checkErr(t, err, fail.Unavailable, "")
	if seq != 0 || p.ID != "globex" || p.State != partnerActive {
		t.Errorf("unconfirmed create returned %+v at %d", p, seq)
	}
	p, _, err = e.reg.SuspendPartner(ctx, "acme", "incident", "bob")
	checkErr(t, err, fail.Unavailable, "")
	if p.State != partnerSuspended {
		t.Errorf("unconfirmed suspend returned %+v", p)
	}
	// Both writes are committed: readable, audited, queued; nothing reached the feed.
	if got, err := e.reg.GetPartner(ctx, "globex"); err != nil || got.State != partnerActive {
		t.Errorf("GetPartner(globex) = %+v, %v", got, err)
	}
	if got, _ := e.reg.GetPartner(ctx, "acme"); got.State != partnerSuspended {
		t.Errorf("acme is %v after an unconfirmed suspend", got.State)
	}
	if recs, _ := e.reg.ListAudit(ctx, 0, 0); len(recs) != 3 {
		t.Errorf("%d audit records, want 3", len(recs))
	}
	if n, err := e.relay.Pending(); err != nil || n != 3 {
		t.Errorf("pending = %d, %v; want 3", n, err)
	}
	if e.rev.Head() != head {
		t.Fatalf("the feed moved to %d while the revoker was down", e.rev.Head())
	}

	// Once the revoker is back, the queued changes arrive in order, exactly once.
	e.pub.down.Store(false)
	e.relay.Kick()
	e.waitHead(t, head+3)
	wantKinds := []string{"partner_changed partner/globex", "partner_changed partner/acme", "blocked partner/acme"}
	for i, want := range wantKinds {
		ev := e.event(t, head+1+uint64(i))
		if got := describe(ev); got != want {
			t.Errorf("event %d is %q, want %q", head+1+uint64(i), got, want)
		}
	}
	if fp, _ := e.rev.State().Partner("acme"); fp.State != partnerSuspended || fp.Block == nil || fp.Block.Sequence != head+3 {
		t.Errorf("revoker's acme = %+v (block %+v)", fp, fp.Block)
	}
	// The next write gets its own sequence, not one of the late entries'.
	_, seq, err = e.reg.CreatePartner(ctx, partner("initech"), "alice", active)
	if err != nil || seq != head+4 {
		t.Errorf("next create: %d, %v; want %d", seq, err, head+4)
	}
	if e.rev.Head() != head+4 {
		t.Errorf("feed head %d, want %d: something was published twice", e.rev.Head(), head+4)
	}
}

func TestQueuedChangesSurviveRestart(t *testing.T) {
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	e.pub.down.Store(true)
	e.node = startNode(t, path, e.pub)
	_, _, err := e.reg.CreatePartner(context.Background(), partner("acme"), "alice", active)
	checkErr(t, err, fail.Unavailable, "")
	e.stop()

	e.pub.down.Store(false)
	e.node = startNode(t, path, e.pub)
	e.waitHead(t, 1)
	if got := describe(e.event(t, 1)); got != "partner_changed partner/acme" {
		t.Errorf("event 1 is %q", got)
	}
	_, seq, err := e.reg.CreatePartner(context.Background(), partner("globex"), "alice", active)
	if err != nil || seq != 2 {
		t.Errorf("next create: %d, %v; want 2", seq, err)
	}
}

func describe(ev *treatyv1.Event) string {
	kind, target := feed.Describe(ev)
	return kind + " " + target
}
