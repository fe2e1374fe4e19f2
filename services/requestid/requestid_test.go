package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/services/requestid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lines returns the JSON log lines written to buf so far.
func lines(t *testing.T, buf *logtest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// serve runs the health service behind the request id and logging interceptors (in the server's
// order), logging JSON into the returned buffer.
func serve(t *testing.T, dialOpts ...grpc.DialOption) (healthpb.HealthClient, *logtest.Buffer) {
	t.Helper()
	buf := &logtest.Buffer{}
	log := slog.New(requestid.Handler(slog.NewJSONHandler(buf, nil)))
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	opts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(requestid.UnaryServerInterceptor(), logging.UnaryServerInterceptor(logger, opts...)),
		grpc.ChainStreamInterceptor(requestid.StreamServerInterceptor(), logging.StreamServerInterceptor(logger, opts...)),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		hs.Shutdown()
		srv.Stop()
		<-served
	})
	return healthpb.NewHealthClient(conn), buf
}

// echoedID calls the health service with ctx, sending sent as the request id unless it is empty,
// and returns the id the server answered with.
func echoedID(t *testing.T, client healthpb.HealthClient, ctx context.Context, sent string) string {
	t.Helper()
	if sent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, requestid.Header, sent)
	}
	var header metadata.MD
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	got := header.Get(requestid.Header)
	if len(got) != 1 {
		t.Fatalf("header %v", header)
	}
	return got[0]
}

func TestUnary(t *testing.T) {
	client, buf := serve(t)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"sane", "req-42/abc", true},
		{"longest", strings.Repeat("a", requestid.MaxLen), true},
		{"none", "", false},
		{"too long", strings.Repeat("a", requestid.MaxLen+1), false},
		{"space", "a b", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := echoedID(t, client, context.Background(), tc.sent)
			switch {
			case tc.kept && id != tc.sent:
				t.Errorf("id %q, want the client's %q", id, tc.sent)
			case !tc.kept && (id == tc.sent || len(id) != 16 || !requestid.Sane(id)):
				t.Errorf("id %q, want a new 16-digit one", id)
			}
			var found int
			for _, l := range lines(t, buf) {
				if l["request_id"] == id {
					found++
					if l["msg"] != "finished call" || l["grpc.method"] != "Check" {
						t.Errorf("line %v", l)
					}
				}
			}
			if found != 1 {
				t.Errorf("%d log lines carry %q, want 1:\n%v", found, id, lines(t, buf))
			}
		})
	}
}

// A call made for another call carries that call's id to the server it calls, unless its caller
// set one itself; without either, the server makes one up as usual.
func TestUnaryClientPassesTheIDOn(t *testing.T) {
	client, _ := serve(t, grpc.WithChainUnaryInterceptor(requestid.UnaryClientInterceptor()))
	for _, tc := range []struct {
		name, callID, sent, want string
	}{
		{name: "the call's id", callID: "req-outer", want: "req-outer"},
		{name: "the caller's own wins", callID: "req-outer", sent: "req-explicit", want: "req-explicit"},
		{name: "none: the server's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.callID != "" {
				ctx = requestid.NewContext(ctx, tc.callID)
			}
			switch got := echoedID(t, client, ctx, tc.sent); {
			case tc.want != "" && got != tc.want:
				t.Errorf("the server used id %q, want %q", got, tc.want)
			case tc.want == "" && (len(got) != 16 || got == "req-outer"):
				t.Errorf("the server used id %q, want a new one", got)
			}
		})
	}
}

// gRPC clients refuse to send some insane ids at all; the others are tested over gRPC above.
func TestSane(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "req-42/abc:=+_.~!": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "a b": false, "a\nb": false, "a\tb": false, "\x00": false, "é": false, "\x7f": false,
	} {
		if got := requestid.Sane(id); got != want {
			t.Errorf("Sane(%q) = %v", id, got)
		}
	}
}

func TestPrintable(t *testing.T) {
	for id, want := range map[string]string{
		"req-42/abc:=+_.~!":           "req-42/abc:=+_.~!",
		"a b\tc\x00\x7f":              "a_b_c__",
		"é":                           "__",
		strings.Repeat("a", 65):       strings.Repeat("a", 64),
		" " + strings.Repeat("a", 99): "_" + strings.Repeat("a", 63),
	} {
		got := requestid.Printable(id)
		if got != want {
			t.Errorf("Printable(%q) = %q, want %q", id, got, want)
		}
		if !requestid.Sane(got) {
			t.Errorf("Printable(%q) = %q is not Sane", id, got)
		}
	}
}

// An error still carries the header: a client can quote the id of a failed call.
func TestUnaryError(t *testing.T) {
	client, _ := serve(t)
	var header metadata.MD
	_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nonesuch"}, grpc.Header(&header))
	if err == nil {
		t.Fatal("want NOT_FOUND for an unknown service")
	}
	if got := header.Get(requestid.Header); len(got) != 1 || len(got[0]) != 16 {
		t.Errorf("header %v", header)
	}
}

func TestStream(t *testing.T) {
	client, buf := serve(t)
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), requestid.Header, "watch-1"))
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	header, err := stream.Header()
	if err != nil || len(header.Get(requestid.Header)) != 1 || header.Get(requestid.Header)[0] != "watch-1" {
		t.Fatalf("header %v, %v", header, err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The finished call is logged once the server notices the cancellation.
	for range 500 {
		for _, l := range lines(t, buf) {
			if l["request_id"] == "watch-1" && l["grpc.method"] == "Watch" {
				return
			}
		}
		waitABit()
	}
	t.Errorf("no log line of the stream carries its id:\n%v", lines(t, buf))
}

// Handler adds request_id to records logged with a context that carries one, once.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.Handler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	ctx := requestid.NewContext(context.Background(), "r1")
	log.InfoContext(ctx, "with")
	log.InfoContext(ctx, "own", "request_id", "r1")
	log.Info("without")
	log.InfoContext(ctx, "many", "a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`"msg":"with","component":"x","request_id":"r1"}`,
		`"msg":"own","component":"x","request_id":"r1"}`,
		`"msg":"without","component":"x"}`,
		`"f":6,"request_id":"r1"}`,
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %s, want it to end with %s", i, lines[i], w)
		}
	}
	if requestid.Handler(requestid.Handler(slog.DiscardHandler)) != requestid.Handler(slog.DiscardHandler) {
		t.Error("wrapping twice adds a second wrapper")
	}
}

func waitABit() { time.Sleep(10 * time.Millisecond) }
