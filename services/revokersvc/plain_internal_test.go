package revokersvc

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TestPlainStream asks plainStream about real streams: a plain one may share encodings; one whose
// responses the server compresses may not, nor one whose request came compressed even if the
// handler then chose to answer uncompressed (grpc-go's PreparedMsg would still compress). It
// fails if grpc-go stops telling a handler any of this, which would silently turn sharing off.
func TestPlainStream(t *testing.T) {
	plain := make(chan bool, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		if md, _ := metadata.FromIncomingContext(stream.Context()); len(md.Get("x-answer-identity")) > 0 {
			if err := grpc.SetSendCompressor(stream.Context(), encoding.Identity); err != nil {
				return err
			}
		}
		plain <- plainStream(stream.Context())
		var in emptypb.Empty
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		return stream.SendMsg(&in)
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gz := grpc.UseCompressor(gzip.Name)
	for _, tt := range []struct {
		name     string
		identity bool // the handler answers uncompressed, whatever the request
		opts     []grpc.CallOption
		want     bool
	}{
		{"plain", false, nil, true},
		{"gzip", false, []grpc.CallOption{gz}, false},
		{"gzip request, identity answer", true, []grpc.CallOption{gz}, false},
	} {
		ctx := context.Background()
		if tt.identity {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-answer-identity", "1")
		}
		if err := conn.Invoke(ctx, "/test.Any/Call", &emptypb.Empty{}, &emptypb.Empty{}, tt.opts...); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := <-plain; got != tt.want {
			t.Errorf("%s: plainStream = %v, want %v", tt.name, got, tt.want)
		}
	}
}
