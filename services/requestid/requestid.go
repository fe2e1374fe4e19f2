// Package requestid gives every gRPC call a request id, so that the log lines of one call can be
// found together and a client can quote the id of a failed call. The interceptors take the id the
// client sent in the x-request-id metadata when it is sane, or make one up; they put it in the
// call's context and send it back in the x-request-id response header. Handler wraps a
// slog.Handler so that every line logged with the call's context carries it as request_id: the
// lines of go-grpc-middleware's logging interceptor (which logs with the call's context) and the
// handlers' own.
//
// The id reaches the logging interceptor through the logger rather than as one of its fields
// (logging.InjectFields): the interceptor merges context fields through maps, which cost some
// thirty allocations per call once there is any field to merge.
package requestid

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Header is the metadata key of the request id, in both directions.
const Header = "x-request-id"

// Field is the log field that carries the request id.
const Field = "request_id"

// MaxLen is the longest client-sent id kept; a longer one is replaced.
const MaxLen = 64

type ctxKey struct{}

// NewContext returns ctx carrying the request id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request id ctx carries, if any.
func FromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(ctxKey{}).(string)
	return id, ok && id != ""
}

// Sane reports whether a client-sent id may be kept: 1 to MaxLen visible ASCII characters, so
// that it can go into log lines and headers as it is (no spaces, controls or line breaks that
// could forge a log line).
func Sane(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Printable returns a client-sent id as it may be recorded (in log lines and the decision log)
// where the protocol requires the id to be echoed as it came, so that it cannot be replaced (the
// AuthZEN HTTP API): the id itself when Sane, else its first MaxLen bytes with every byte that is
// not visible ASCII replaced by '_'. The record stays bounded and cannot forge a log line, and a
// long id is still found by its start.
func Printable(id string) string {
	if Sane(id) {
		return id
	}
	b := []byte(id[:min(len(id), MaxLen)])
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '_'
		}
	}
	return string(b)
}

// New makes a request id: 16 hex digits. Ids need to be unique enough to tell calls apart in the
// logs, not unpredictable, so they come from the runtime's fast random source.
func New() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	var out [16]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// incoming returns the id of the call ctx belongs to: the client's if sane, else a new one.
func incoming(ctx context.Context) string {
	// Only this key's values, not a copy of the whole metadata.
	if vals := metadata.ValueFromIncomingContext(ctx, Header); len(vals) > 0 && Sane(vals[0]) {
		return vals[0]
	}
	return New()
}

// UnaryServerInterceptor gives each unary call its request id. It must run before (outside) the
// logging interceptor, whose lines then carry the id when its logger's handler is wrapped with
// Handler.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id := incoming(ctx)
		// The header goes out with the response or the error status. It can only fail if the
		// header was sent already, which no handler has had the chance to do yet.
		_ = grpc.SetHeader(ctx, metadata.MD{Header: {id}})
		return handler(NewContext(ctx, id), req)
	}
}

// UnaryClientInterceptor passes the request id of the call a client call is made for (the id the
// server interceptors put in its context) on to the server called, so that one id follows a
// request through Treaty's own services: the issuer's question to the PDP is logged, and its
// decision recorded, under the id of the token request that asked it. An id the caller put in the
// outgoing metadata itself is left as it is.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if id, ok := FromContext(ctx); ok {
			if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get(Header)) == 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, Header, id)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamServerInterceptor gives each streaming call its request id.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id := incoming(ss.Context())
		_ = ss.SetHeader(metadata.MD{Header: {id}})
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = NewContext(ss.Context(), id)
		return handler(srv, wrapped)
	}
}

// Handler wraps h so that every record logged with a context carrying a request id has the
// request_id attribute, unless the record already has one (the logging interceptor's lines).
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := FromContext(ctx); ok && !hasField(r) {
		r = r.Clone()
		r.AddAttrs(slog.String(Field, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.Handler.WithGroup(name)} }

func hasField(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == Field
		return !found
	})
	return found
}
