package authn_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestAuditRecordsTheCaller writes through the real registry behind the interceptors: its audit
// trail names the authenticated identity, with the actor the client declared after it.
func TestAuditRecordsTheCaller(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	relayed := make(chan struct{})
	go func() { relay.Run(rctx); close(relayed) }()
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := acc.CreateIdentity(ctx, "ops-admin", []access.Role{access.RoleAdmin}, true, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	a := authn.New(authn.Config{Access: acc, Logger: quiet})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(a.Unary()), grpc.ChainStreamInterceptor(a.Stream()))
	registrysvc.New(registrysvc.Config{Registry: reg, Logger: quiet}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served; cancel(); <-relayed; acc.Close() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(authn.Token(tok)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := treatyv1.NewRegistryServiceClient(conn)
	for id, actor := range map[string]string{"acme": "alice", "globex": ""} {
		if _, err := client.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: actor, Activate: true, ApprovedBy: "bob",
			Partner: &treatyv1.Partner{Id: id, DisplayName: id, OwnerTeam: "payments", ContractEndTime: timestamppb.New(time.Now().Add(24 * time.Hour))}}); err != nil {
			t.Fatal(err)
		}
	}
	records, err := reg.ListAudit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range records {
		got[r.Target] = r.Actor
	}
	if got["partner/acme"] != "ops-admin/alice" || got["partner/globex"] != "ops-admin" {
		t.Errorf("audit actors = %v, want ops-admin/alice and ops-admin", got)
	}
}
