package authn_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkUnaryCheck runs the unary interceptor's authenticate + authorize path for
// DecisionService/Check with a token, as the server sees it (incoming metadata, a peer), with a
// handler that does nothing: the cost authn adds to every decision.
func BenchmarkUnaryCheck(b *testing.B) {
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(b, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer acc.Close()
	_, tok, err := acc.CreateIdentity(context.Background(), "pdp", []access.Role{access.RolePDPClient}, true, "", "bench")
	if err != nil {
		b.Fatal(err)
	}
	in := authn.New(authn.Config{Access: acc}).Unary()
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok, "content-type", "application/grpc"))
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}})
	info := &grpc.UnaryServerInfo{FullMethod: treatyv1.DecisionService_Check_FullMethodName}
	req := &treatyv1.CheckRequest{}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
