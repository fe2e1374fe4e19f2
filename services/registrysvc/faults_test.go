package registrysvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// faultyFixture is a real registry and revoker, each on a real bbolt file behind a fault switch
// (storetest.Faulty), the registry served over loopback gRPC.
type faultyFixture struct {
	client       treatyv1.RegistryServiceClient
	reg          *registry.Registry
	rev          *revoker.Log
	relay        *outbox.Relay
	regSt, revSt *storetest.FaultyStore
}

func startFaulty(t *testing.T) *faultyFixture {
	t.Helper()
	f := &faultyFixture{
		regSt: storetest.Faulty(storetest.OpenBolt(t, registry.Schema)), // checked for consistency at cleanup
		revSt: storetest.Faulty(storetest.OpenBolt(t, revoker.Schema)),
	}
	var err error
	if f.rev, err = revoker.Open(f.revSt, revoker.Config{}); err != nil {
		t.Fatal(err)
	}
	f.relay = outbox.NewRelay(f.regSt, f.rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { f.relay.Run(ctx); close(relayDone) }()
	t.Cleanup(func() { cancel(); <-relayDone })
	if f.reg, err = registry.New(registry.Config{Store: f.regSt, Relay: f.relay, Logger: quiet, PublishTimeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	conn := grpctest.Serve(t, registrysvc.New(registrysvc.Config{Registry: f.reg, Logger: quiet}).Register)
	f.client = treatyv1.NewRegistryServiceClient(conn)
	return f
}

func (f *faultyFixture) create(id string) error {
	_, err := f.client.CreatePartner(context.Background(), &treatyv1.CreatePartnerRequest{Partner: partnerProto(id), Actor: "alice", Activate: true, ApprovedBy: "test"})
	return err
}

// eventually polls cond every 20 ms for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not after 20s: %s", what)
		}
	}
}

// A registry whose disk is full refuses writes with UNAVAILABLE and a message saying what to do,
// keeps answering reads, and takes writes again once the disk is healed; no refused write left a
// trace, every acknowledged one is there, the audit chain verifies and the file passes bbolt's
// consistency check (at cleanup).
func TestRegistryDiskFull(t *testing.T) {
	f := startFaulty(t)
	ctx := context.Background()
	if err := f.create("acme"); err != nil {
		t.Fatal(err)
	}
	f.regSt.FailWrites(nil)
	writes := map[string]func() error{
		"CreatePartner": func() error { return f.create("globex") },
		"SuspendPartner": func() error {
			_, err := f.client.SuspendPartner(ctx, &treatyv1.SuspendPartnerRequest{Id: "acme", Reason: "test", Actor: "alice"})
			return err
		},
		"CreateIntegration": func() error {
			_, err := f.client.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Integration: integrationProto("shop", "acme"), Actor: "alice", Activate: true, ApprovedBy: "test"})
			return err
		},
	}
	for name, write := range writes {
		err := write()
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no space left on device; free space") {
			t.Errorf("%s on a full disk: %v, want UNAVAILABLE saying the disk is full", name, err)
		}
	}
	// Reads go on.
	got, err := f.client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "acme"})
	if err != nil || got.GetPartner().GetState() != treatyv1.PartnerState_PARTNER_STATE_ACTIVE {
		t.Fatalf("GetPartner on a full disk: %v, %v; want acme, still active", got, err)
	}
	if list, err := f.client.ListPartners(ctx, &treatyv1.ListPartnersRequest{}); err != nil || len(list.GetPartners()) != 1 {
		t.Fatalf("ListPartners on a full disk: %v, %v; want acme alone", list, err)
	}
	if f.rev.Head() != 1 {
		t.Fatalf("the revoker's head is %d: a refused write published something", f.rev.Head())
	}

	f.regSt.Heal()
	if err := f.create("globex"); err != nil {
		t.Fatalf("CreatePartner after the disk is healed: %v", err)
	}
	if list, _ := f.client.ListPartners(ctx, &treatyv1.ListPartnersRequest{}); len(list.GetPartners()) != 2 {
		t.Fatalf("partners after healing: %v", list.GetPartners())
	}
	v, err := f.reg.VerifyAudit(ctx, registry.AuditAnchor{})
	if err != nil || !v.Intact() || v.Records != 2 {
		t.Fatalf("audit after the fault: %+v, %v; want 2 intact records", v, err)
	}
	if f.rev.Head() != 2 {
		t.Fatalf("revoker head %d, want 2 (one event per acknowledged create)", f.rev.Head())
	}
}

// The outbox relay across store faults on both sides. The revoker's disk fails: a registry write
// commits but is not confirmed (UNAVAILABLE, the write kept), and nothing is appended to the feed.
// Then the registry's disk fails too and the revoker's heals: the relay publishes, but cannot
// dequeue what it published. Once the registry's disk heals, it publishes the same entries again,
// and the revoker answers with the original sequences: each change is in the feed exactly once,
// in order.
func TestRelayAcrossStoreFaults(t *testing.T) {
	f := startFaulty(t)
	if err := f.create("acme"); err != nil {
		t.Fatal(err)
	}
	f.revSt.FailWrites(nil)
	for _, id := range []string{"globex", "initech"} {
		err := f.create(id)
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "recorded durably") {
			t.Fatalf("create %s while the revoker's disk is full: %v, want UNAVAILABLE, recorded but not confirmed", id, err)
		}
		if _, err := f.client.GetPartner(context.Background(), &treatyv1.GetPartnerRequest{Id: id}); err != nil {
			t.Fatalf("the unconfirmed create of %s is not kept: %v", id, err)
		}
	}
	if f.rev.Head() != 1 {
		t.Fatalf("revoker head %d while its disk is full, want 1", f.rev.Head())
	}

	f.regSt.FailWrites(nil)
	refused := f.regSt.Refused()
	f.revSt.Heal()
	f.relay.Kick()
	eventually(t, "the relay publishes the queued changes", func() bool { return f.rev.Head() == 3 })
	eventually(t, "the relay tries to dequeue them", func() bool { f.relay.Kick(); return f.regSt.Refused() > refused })
	if n, _ := f.relay.Pending(); n != 2 {
		t.Fatalf("%d entries queued after a failed dequeue, want 2", n)
	}

	f.regSt.Heal()
	eventually(t, "the relay dequeues", func() bool { f.relay.Kick(); n, _ := f.relay.Pending(); return n == 0 })
	if err := f.create("umbrella"); err != nil {
		t.Fatal(err)
	}
	events, err := f.rev.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, ev := range events {
		order = append(order, ev.GetPartnerChanged().GetPartnerId())
	}
	if strings.Join(order, ",") != "acme,globex,initech,umbrella" {
		t.Fatalf("feed holds partner changes %v, want each once, in order", order)
	}
	v, err := f.reg.VerifyAudit(context.Background(), registry.AuditAnchor{})
	if err != nil || !v.Intact() || v.Records != 4 {
		t.Fatalf("audit: %+v, %v; want 4 intact records", v, err)
	}
}
