package revokersvc_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) {
	// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

type env struct {
	log    *revoker.Log
	svc    *revokersvc.Service
	conn   *grpc.ClientConn
	client treatyv1.RevocationServiceClient
}

// start serves a real revoker on loopback and returns a client connected to it.
func start(t *testing.T) *env {
	t.Helper()
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond})
	t.Cleanup(svc.Close)
	conn := grpctest.Serve(t, svc.Register)
	return &env{log: log, svc: svc, conn: conn, client: treatyv1.NewRevocationServiceClient(conn)}
}

func onboard(t *testing.T, e *env, partner string) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	jwk, _ := (&jose.JSONWebKey{Key: pub, KeyID: "k1"}).MarshalJSON()
	seqs, err := revokersvc.NewPublisher(e.conn).Publish(context.Background(), []*treatyv1.PublishEntry{
		{RequestId: partner + "-p", Event: &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: partner, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}},
		{RequestId: partner + "-k", Event: &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
			Kid: "k-" + partner, Algorithm: "EdDSA", PublicJwk: jwk, Issuer: "https://issuer.test"}}}},
	})
	if err != nil || len(seqs) != 2 {
		t.Fatalf("publish: %v %v", seqs, err)
	}
}

func TestStatusCodes(t *testing.T) {
	e := start(t)
	onboard(t, e, "acme")
	ctx := context.Background()
	partner := treatyv1.TargetKind_TARGET_KIND_PARTNER
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"revoke without kind", func() error {
			_, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetId: "acme", Reason: "r"})
			return err
		}, codes.InvalidArgument},
		{"revoke bad id", func() error {
			_, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: partner, TargetId: "ACME", Reason: "r"})
			return err
		}, codes.InvalidArgument},
		{"revoke without reason", func() error {
			_, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: partner, TargetId: "acme"})
			return err
		}, codes.InvalidArgument},
		{"revoke unknown partner", func() error {
			_, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: partner, TargetId: "nobody", Reason: "r"})
			return err
		}, codes.NotFound},
		{"restore unblocked partner", func() error {
			_, err := e.client.Restore(ctx, &treatyv1.RestoreRequest{TargetKind: partner, TargetId: "acme", Reason: "r"})
			return err
		}, codes.FailedPrecondition},
		{"publish nothing", func() error {
			_, err := e.client.Publish(ctx, &treatyv1.PublishRequest{})
			return err
		}, codes.InvalidArgument},
		{"publish a revocation", func() error {
			_, err := e.client.Publish(ctx, &treatyv1.PublishRequest{Entries: []*treatyv1.PublishEntry{{RequestId: "x",
				Event: &treatyv1.Event{Change: &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{Jti: "j1"}}}}}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Errorf("code = %v, want %v", got, tc.want)
			}
		})
	}
}

func recvEvent(t *testing.T, s grpc.ServerStreamingClient[treatyv1.SubscribeResponse]) *treatyv1.Event {
	t.Helper()
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if ev := m.GetEvent(); ev != nil {
			return ev
		}
	}
}

func TestSubscribeReplaysThenFollows(t *testing.T) {
	e := start(t)
	onboard(t, e, "acme")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stream, err := e.client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	hb := first.GetHeartbeat()
	if hb == nil || hb.GetEpoch() != e.log.Epoch() || hb.GetHeadSequence() != 2 {
		t.Fatalf("first message = %v, want a heartbeat with epoch and head 2", first)
	}
	if ev := recvEvent(t, stream); ev.GetSequence() != 2 || ev.GetSigningKeyPublished() == nil {
		t.Fatalf("replayed %v, want the key at 2", ev)
	}
	resp, err := e.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: "acme", Reason: "breach", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ev := recvEvent(t, stream)
	if ev.GetSequence() != resp.GetSequence() || ev.GetBlocked().GetTargetId() != "acme" || ev.GetReason() != "breach" || ev.GetActor() != "alice" {
		t.Fatalf("live event = %v", ev)
	}
	// Heartbeats keep coming while idle, carrying the new head.
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if hb := m.GetHeartbeat(); hb != nil && hb.GetHeadSequence() == 3 {
			break
		}
	}
}

func TestSourceAndSnapshot(t *testing.T) {
	e := start(t)
	onboard(t, e, "acme")
	if _, err := e.log.Revoke(context.Background(), revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_PARTNER, Target: "acme", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	src := revokersvc.NewSource(e.conn)
	st, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch() != e.log.Epoch() || st.Sequence() != 3 {
		t.Fatalf("snapshot at %s/%d", st.Epoch(), st.Sequence())
	}
	if ctl, _ := st.Control(treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme"); ctl.Block == nil {
		t.Fatal("snapshot lost the block")
	}
	if k, ok := st.SigningKey("k-acme"); !ok || k.Public == nil {
		t.Fatal("snapshot lost the key")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	e := start(t)
	stream, err := e.client.Subscribe(context.Background(), &treatyv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	for {
		_, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
			}
			return
		}
	}
}
