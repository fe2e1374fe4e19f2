package registry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

// The registry's revocations reach the feed exactly once, whatever point the process dies at: the
// change and its outbox entries commit together, the relay publishes with the entries' request
// ids, and the revoker answers a republished request id with its original sequence.

// waitDrained waits until the node's outbox is empty.
func (n *node) waitDrained(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pending, err := n.relay.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox entries still queued after 15s", pending)
		}
		n.relay.Kick()
		time.Sleep(10 * time.Millisecond)
	}
}

// setupRetirable creates acme/orders/bot and returns the feed head after it.
func setupRetirable(t *testing.T, e *env) uint64 {
	t.Helper()
	e.mustPartner(t, "acme")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")
	return e.rev.Head()
}

// retireUnpublished retires workload bot while the revoker is unreachable, then stops the node as
// if the process died: the retirement is committed and queued, and nothing reached the feed.
func retireUnpublished(t *testing.T, e *env, head uint64) {
	t.Helper()
	e.pub.down.Store(true)
	_, _, err := e.reg.RetireWorkload(context.Background(), "bot", "key leaked", "bob")
	checkErr(t, err, fail.Unavailable, "")
	e.stop()
	if e.rev.Head() != head {
		t.Fatalf("the feed moved to %d while the revoker was unreachable", e.rev.Head())
	}
	e.pub.down.Store(false)
}

// checkRetiredOnce checks that the feed holds the retirement exactly once, right after head.
func checkRetiredOnce(t *testing.T, e *env, head uint64) {
	t.Helper()
	if e.rev.Head() != head+2 {
		t.Fatalf("feed head %d, want %d: the retirement is in the feed %s", e.rev.Head(), head+2,
			map[bool]string{true: "more than once", false: "not at all"}[e.rev.Head() > head+2])
	}
	if got := describe(e.event(t, head+1)); got != "workload_changed workload/bot" {
		t.Errorf("event %d is %q", head+1, got)
	}
	if ev := e.event(t, head+2); describe(ev) != "blocked workload/bot" || !ev.GetBlocked().GetPermanent() {
		t.Errorf("event %d is %v", head+2, ev)
	}
}

func TestRetirementCommittedButNotPublishedIsPublishedOnce(t *testing.T) {
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	e.node = startNode(t, path, e.pub)
	head := setupRetirable(t, e)
	retireUnpublished(t, e, head)

	// The process restarts; its relay finds the queued entries and publishes them.
	e.node = startNode(t, path, e.pub)
	e.waitHead(t, head+2)
	e.waitDrained(t)
	checkRetiredOnce(t, e, head)
	if w, _ := e.reg.GetWorkload(context.Background(), "bot"); w.State != workloadRetired {
		t.Errorf("bot is %v after the restart", w.State)
	}
}

func TestPublishedButNotDequeuedIsNotPublishedAgain(t *testing.T) {
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	e.node = startNode(t, path, e.pub)
	head := setupRetirable(t, e)
	retireUnpublished(t, e, head)

	// A relay published the queued entries, and the process died before it dequeued them (the
	// relay dequeues in a transaction after Publish returns): publish them through the revoker
	// directly and leave them queued.
	entries := queuedEntries(t, path)
	if len(entries) != 2 {
		t.Fatalf("%d queued entries, want 2", len(entries))
	}
	seqs, err := e.rev.Publish(context.Background(), entries)
	if err != nil || len(seqs) != 2 || seqs[1] != head+2 {
		t.Fatalf("publish the queued entries: %v, %v", seqs, err)
	}

	// The restarted relay publishes them again; the revoker recognises their request ids.
	e.node = startNode(t, path, e.pub)
	e.waitDrained(t)
	checkRetiredOnce(t, e, head)
	// And the next write lands right after them.
	_, seq, err := e.reg.CreatePartner(context.Background(), partner("globex"), "alice", active)
	if err != nil || seq != head+3 {
		t.Errorf("next write at %d, %v; want %d", seq, err, head+3)
	}
}

func TestContractEndWhileDownBlocksOnceAcrossRestarts(t *testing.T) {
	e := newRevoker(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	c := frozenClock()
	e.node = startNode(t, path, e.pub, c.option)
	if _, _, err := e.reg.CreatePartner(context.Background(), partnerEnding("acme", c, time.Hour), "alice", active); err != nil {
		t.Fatal(err)
	}
	head := e.rev.Head()
	e.stop()

	// The contract ends while the registry is down. It restarts with the revoker unreachable: the
	// scheduler's catch-up pass commits the block, and the process dies before it is published.
	c.Advance(2 * time.Hour)
	e.pub.down.Store(true)
	e.node = startNode(t, path, e.pub, c.option)
	e.runScheduler()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p, _ := e.reg.GetPartner(context.Background(), "acme"); p.State == partnerOffboarding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not catch up on the contract end within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.stop()
	if e.rev.Head() != head {
		t.Fatalf("the feed moved while the revoker was unreachable")
	}

	// Restart with the revoker back: exactly one block, and the scheduler adds nothing.
	e.pub.down.Store(false)
	for restart := range 2 {
		e.node = startNode(t, path, e.pub, c.option)
		e.runScheduler()
		if n, _, err := e.reg.EndContracts(context.Background()); err != nil || n != 0 {
			t.Errorf("restart %d: EndContracts ended %d, %v", restart, n, err)
		}
		e.waitHead(t, head+2)
		e.waitDrained(t)
		e.stop()
		if e.rev.Head() != head+2 || e.blocks(t, "acme") != 1 {
			t.Fatalf("restart %d: feed head %d (want %d), %d permanent blocks on acme (want 1)",
				restart, e.rev.Head(), head+2, e.blocks(t, "acme"))
		}
	}
	if got := describe(e.event(t, head+1)); got != "partner_changed partner/acme" {
		t.Errorf("event %d is %q", head+1, got)
	}
}

// queuedEntries reads the outbox entries queued in the registry store at path (closed).
func queuedEntries(t *testing.T, path string) []*treatyv1.PublishEntry {
	t.Helper()
	st, err := store.OpenBolt(path, registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []*treatyv1.PublishEntry
	err = st.View(func(tx store.Tx) error {
		return tx.Scan(outbox.Bucket, []byte("e/"), nil, func(_, v []byte) (bool, error) {
			e := new(treatyv1.PublishEntry)
			if err := proto.Unmarshal(v, e); err != nil {
				return false, err
			}
			out = append(out, e)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
