package revokersvc

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TestPlainStream asks plainStream about real streams: a plain one may share encodings, one whose
// responses the server compresses may not. It fails if grpc-go stops telling a handler either,
// which would silently turn the sharing off.
func TestPlainStream(t *testing.T) {
	plain := make(chan bool, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
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
	for _, tt := range []struct {
		name string
		opts []grpc.CallOption
		want bool
	}{
		{"plain", nil, true},
		{"gzip", []grpc.CallOption{grpc.UseCompressor(gzip.Name)}, false},
	} {
		if err := conn.Invoke(context.Background(), "/test.Any/Call", &emptypb.Empty{}, &emptypb.Empty{}, tt.opts...); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := <-plain; got != tt.want {
			t.Errorf("%s: plainStream = %v, want %v", tt.name, got, tt.want)
		}
	}
}
