// Package grpctest serves gRPC services on a real loopback listener for tests and returns a client
// connection to them, cleaning both up when the test ends.
package grpctest

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Serve starts a gRPC server on 127.0.0.1 with whatever register adds to it, and returns a
// connection to it. At cleanup the connection is closed and the server stopped; cleanups the test
// registered earlier (stores, relays) run after that.
func Serve(t testing.TB, register func(grpc.ServiceRegistrar)) *grpc.ClientConn {
	t.Helper()
	return ServeWith(t, nil, register)
}

// ServeWith is Serve with server options, such as interceptors under test.
func ServeWith(t testing.TB, opts []grpc.ServerOption, register func(grpc.ServiceRegistrar)) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	register(srv)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-served
	})
	return conn
}
