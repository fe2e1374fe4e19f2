package registry_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
)

const partnerOffboarding = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING

// clock is a fake clock that tests move by hand; by default it also follows real time, so a
// scheduler's timer computed from it fires for real.
type clock struct {
	base   time.Time
	start  time.Time
	offset atomic.Int64 // nanoseconds added by Advance
	frozen bool
}

// frozenClock starts at now and moves only by Advance.
func frozenClock() *clock { return &clock{base: now, frozen: true} }

// runningClock starts at now and follows real time.
func runningClock() *clock { return &clock{base: now, start: time.Now()} }

func (c *clock) Now() time.Time {
	t := c.base.Add(time.Duration(c.offset.Load()))
	if !c.frozen {
		t = t.Add(time.Since(c.start))
	}
	return t
}

func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func (c *clock) option(cfg *registry.Config) { cfg.Now = c.Now }

// partnerEnding is a partner whose contract ends in d on clock c.
func partnerEnding(id string, c *clock, d time.Duration) registry.Partner {
	p := partner(id)
	p.ContractEnd = c.Now().Add(d)
	return p
}

// blocks counts the feed's permanent blocks on a partner.
func (e *env) blocks(t *testing.T, partnerID string) int {
	t.Helper()
	evs, err := e.rev.Read(0, int(e.rev.Head()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if b := ev.GetBlocked(); b.GetTargetKind() == treatyv1.TargetKind_TARGET_KIND_PARTNER && b.GetTargetId() == partnerID && b.GetPermanent() {
			n++
		}
	}
	return n
}

func TestEndContractsEndsEachPartnerOnce(t *testing.T) {
	e := newRevoker(t)
	c := frozenClock()
	e.node = startNode(t, filepath.Join(t.TempDir(), "registry.db"), e.pub, c.option)
	ctx := context.Background()
	for id, d := range map[string]time.Duration{"acme": time.Hour, "globex": 3 * time.Hour, "initech": time.Hour, "umbrella": time.Hour} {
		if _, _, err := e.reg.CreatePartner(ctx, partnerEnding(id, c, d), "alice", active); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.reg.SuspendPartner(ctx, "initech", "review", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.OffboardPartner(ctx, "umbrella", "merger", "bob"); err != nil {
		t.Fatal(err)
	}

	n, next, err := e.reg.EndContracts(ctx)
	if err != nil || n != 0 || !next.Equal(now.Add(time.Hour)) {
		t.Fatalf("before any contract end: ended %d, next %v, %v; want 0, %v", n, next, err, now.Add(time.Hour))
	}
	c.Advance(time.Hour) // the end is exclusive: at the instant itself, access is over
	head := e.rev.Head()
	n, next, err = e.reg.EndContracts(ctx)
	if err != nil || n != 2 || !next.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("at the contract end: ended %d, next %v, %v; want 2, %v", n, next, err, now.Add(3*time.Hour))
	}
	e.waitHead(t, head+4)
	e.waitDrained(t)
	for _, id := range []string{"acme", "initech"} {
		if p, _ := e.reg.GetPartner(ctx, id); p.State != partnerOffboarding {
			t.Errorf("%s is %v, want offboarding", id, p.State)
		}
		fp, _ := e.rev.State().Partner(id)
		if fp.State != partnerOffboarding || fp.Block == nil || !fp.Block.Permanent {
			t.Errorf("revoker's %s = %+v (block %+v)", id, fp, fp.Block)
		}
		if got := e.blocks(t, id); got != 1 {
			t.Errorf("%d permanent blocks on %s, want 1", got, id)
		}
	}
	// The suspended partner's restorable block became permanent: a contract end is not undone.
	_, err = e.rev.Restore(ctx, revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_PARTNER, Target: "initech", Reason: "r"})
	checkErr(t, err, fail.Precondition, "")
	if p, _ := e.reg.GetPartner(ctx, "umbrella"); p.State != partnerTerminated {
		t.Errorf("terminated partner moved to %v", p.State)
	}
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	var audited int
	for _, r := range recs {
		if r.Action == "partner.contract_end" {
			audited++
			if r.Actor != registry.ContractActor || r.Before["state"] == "" || r.After["state"] != "offboarding" || r.Reason == "" {
				t.Errorf("audit record = %+v", r)
			}
		}
	}
	if audited != 2 {
		t.Errorf("%d contract-end audit records, want 2", audited)
	}

	// A second pass finds nothing to do.
	head = e.rev.Head()
	if n, _, err := e.reg.EndContracts(ctx); err != nil || n != 0 {
		t.Errorf("second pass ended %d, %v", n, err)
	}
	if pending, _ := e.relay.Pending(); pending != 0 || e.rev.Head() != head {
		t.Errorf("second pass queued %d entries, feed %d -> %d", pending, head, e.rev.Head())
	}
	// The offboarding partner is terminated in one step; it cannot be suspended any more.
	_, _, err = e.reg.SuspendPartner(ctx, "acme", "r", "bob")
	checkErr(t, err, fail.Precondition, "")
	if p, _, err := e.reg.OffboardPartner(ctx, "acme", "contract over", "bob"); err != nil || p.State != partnerTerminated {
		t.Errorf("offboard an offboarding partner: %+v, %v", p, err)
	}
}

func TestSchedulerWakesAtTheContractEnd(t *testing.T) {
	e := newRevoker(t)
	c := runningClock()
	// The poll interval is far longer than the test: only the wake-ups can end the contract.
	e.node = startNode(t, filepath.Join(t.TempDir(), "registry.db"), e.pub, c.option,
		func(cfg *registry.Config) { cfg.ContractCheckInterval = time.Hour })
	e.runScheduler()
	// The scheduler sleeps with nothing to wait for; creating the partner wakes it to set a timer.
	_, seq, err := e.reg.CreatePartner(context.Background(), partnerEnding("acme", c, 300*time.Millisecond), "alice", active)
	if err != nil {
		t.Fatal(err)
	}
	e.waitHead(t, seq+2)
	if got := describe(e.event(t, seq+2)); got != "blocked partner/acme" {
		t.Errorf("event %d is %q", seq+2, got)
	}
	if p, _ := e.reg.GetPartner(context.Background(), "acme"); p.State != partnerOffboarding {
		t.Errorf("acme is %v", p.State)
	}
}

func TestNewRejectsNegativeContractCheckInterval(t *testing.T) {
	e := newRevoker(t)
	st := storeFor(t)
	_, err := registry.New(registry.Config{Store: st, Relay: relayFor(t, st, e.pub), ContractCheckInterval: -time.Second})
	if err == nil {
		t.Fatal("New accepted a negative ContractCheckInterval")
	}
}
