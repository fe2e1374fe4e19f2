package services

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/grpctest"
)

// A stream that never sends its request is ended with DEADLINE_EXCEEDED instead of holding its
// goroutine for ever; one that sends it in time is served.
func TestStreamSetupDeadline(t *testing.T) {
	desc := &grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Once",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				var in treatyv1.GetPartnerRequest
				if err := stream.RecvMsg(&in); err != nil {
					return err
				}
				return stream.SendMsg(&in)
			},
		}},
	}
	conn := grpctest.ServeWith(t, []grpc.ServerOption{grpc.StreamInterceptor(streamDeadlines(300 * time.Millisecond))},
		func(r grpc.ServiceRegistrar) { r.RegisterService(desc, struct{}{}) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sdesc := &grpc.StreamDesc{StreamName: "Once", ServerStreams: true, ClientStreams: true}

	silent, err := conn.NewStream(ctx, sdesc, "/test.Echo/Once")
	if err != nil {
		t.Fatal(err)
	}
	var out treatyv1.GetPartnerRequest
	err = silent.RecvMsg(&out)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no request message") {
		t.Fatalf("silent stream: %v, want DEADLINE_EXCEEDED naming the missing request", err)
	}

	prompt, err := conn.NewStream(ctx, sdesc, "/test.Echo/Once")
	if err != nil {
		t.Fatal(err)
	}
	if err := prompt.SendMsg(&treatyv1.GetPartnerRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := prompt.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := prompt.RecvMsg(&out); err != nil || out.GetId() != "acme" {
		t.Fatalf("prompt stream: %v %v, want the echo", &out, err)
	}
}

// A request larger than MaxRequestBytes is refused before it is decoded, and the server goes on
// serving.
func TestOversizedRequestRefused(t *testing.T) {
	_, conn := serve(t, Config{Services: []string{Revoker}})
	client := treatyv1.NewRevocationServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Revoke(ctx, &treatyv1.RevokeRequest{Reason: strings.Repeat("x", MaxRequestBytes+1)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := client.Revoke(ctx, &treatyv1.RevokeRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("next request: %v, want INVALID_ARGUMENT (served, and judged on its content)", err)
	}
}
