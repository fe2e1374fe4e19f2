package services

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds on what one caller can make the server hold or do.
const (
	// MaxRequestBytes bounds one request message. The largest legitimate ones are an import
	// chunk and a policy set; anything bigger is a mistake or an attack, refused before it is
	// decoded.
	MaxRequestBytes = 4 << 20
	// StreamSetupTimeout bounds how long a stream may stay open without sending its next request
	// message: the setup request of a Subscribe, a tail or an export, and each chunk of an import.
	// Without it, a client could open streams and never speak, each holding a goroutine.
	StreamSetupTimeout = 10 * time.Second
	// handshakeTimeout bounds a connection's TLS and HTTP/2 handshakes.
	handshakeTimeout = 10 * time.Second
)

// streamDeadlines bounds each wait for a stream's next request message by StreamSetupTimeout.
func streamDeadlines(timeout time.Duration) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &boundedStream{ServerStream: ss, timeout: timeout, method: info.FullMethod})
	}
}

type boundedStream struct {
	grpc.ServerStream
	timeout time.Duration
	method  string
}

// RecvMsg waits for the message in a goroutine so that it can give up: when it does, the handler
// returns, gRPC ends the stream, and the waiting read returns with the stream's context.
func (s *boundedStream) RecvMsg(m any) error {
	done := make(chan error, 1)
	go func() { done <- s.ServerStream.RecvMsg(m) }()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return status.Errorf(codes.DeadlineExceeded, "%s: no request message within %v of opening the stream (or of the previous message); send it at once", s.method, s.timeout)
	}
}
