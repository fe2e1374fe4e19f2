package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// fakeNotify answers SendTest with the actor it received, so tests see what the interceptor
// made of it.
type fakeNotify struct {
	treatyv1.UnimplementedNotifyServiceServer
}

func (fakeNotify) SendTest(ctx context.Context, req *treatyv1.SendTestRequest) (*treatyv1.SendTestResponse, error) {
	c, _ := authn.CallerFrom(ctx)
	return &treatyv1.SendTestResponse{NotificationId: req.GetActor(), Endpoints: []string{c.Name, c.Via}}, nil
}

func (fakeNotify) ListDeliveries(context.Context, *treatyv1.ListDeliveriesRequest) (*treatyv1.ListDeliveriesResponse, error) {
	return &treatyv1.ListDeliveriesResponse{}, nil
}

type fakeDecision struct {
	treatyv1.UnimplementedDecisionServiceServer
}

func (fakeDecision) Check(context.Context, *treatyv1.CheckRequest) (*treatyv1.CheckResponse, error) {
	return &treatyv1.CheckResponse{}, nil
}

// fakeInventory records the actors of the chunks an import streams.
type fakeInventory struct {
	treatyv1.UnimplementedInventoryServiceServer
	mu     sync.Mutex
	actors []string
}

func (f *fakeInventory) ImportInventory(s grpc.ClientStreamingServer[treatyv1.ImportInventoryRequest, treatyv1.ImportInventoryResponse]) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&treatyv1.ImportInventoryResponse{})
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.actors = append(f.actors, req.GetActor())
		f.mu.Unlock()
	}
}

// unknownDesc is a service the method table does not know.
var unknownDesc = grpc.ServiceDesc{
	ServiceName: "treaty.test.Unknown",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
		req := &treatyv1.WhoAmIRequest{}
		if err := dec(req); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return &treatyv1.WhoAmIResponse{}, nil }
		return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/treaty.test.Unknown/Call"}, h)
	}}},
}

type env struct {
	acc  *access.Access
	addr string
	inv  *fakeInventory
	// tokens by identity name
	tokens map[string]string
}

// start serves health, the fakes and the unknown service behind the interceptors, on loopback;
// with tlsConfig, over TLS.
func start(t *testing.T, tlsConfig *tls.Config) *env {
	t.Helper()
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(t, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{acc: acc, inv: &fakeInventory{}, tokens: map[string]string{}}
	for name, roles := range map[string][]access.Role{
		"root": {access.RoleAdmin}, "ops": {access.RoleOperator}, "audit": {access.RoleAuditor},
		"pdp": {access.RolePDPClient}, "peer": {access.RoleService},
	} {
		_, tok, err := acc.CreateIdentity(ctx, name, roles, true, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name] = tok
	}
	a := authn.New(authn.Config{Access: acc, Logger: slog.New(slog.DiscardHandler)})
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(a.Unary()), grpc.ChainStreamInterceptor(a.Stream())}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	treatyv1.RegisterNotifyServiceServer(srv, fakeNotify{})
	treatyv1.RegisterDecisionServiceServer(srv, fakeDecision{})
	treatyv1.RegisterInventoryServiceServer(srv, e.inv)
	srv.RegisterService(&unknownDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served; acc.Close() })
	e.addr = lis.Addr().String()
	return e
}

func (e *env) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func withAuth(v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", v)
}

func TestRefusals(t *testing.T) {
	e := start(t, nil)
	conn := e.dial(t)
	notify, decide, hc := treatyv1.NewNotifyServiceClient(conn), treatyv1.NewDecisionServiceClient(conn), healthpb.NewHealthClient(conn)
	bearer := func(name string) context.Context { return withAuth("Bearer " + e.tokens[name]) }
	call := map[string]func(context.Context) error{
		"health": func(ctx context.Context) error { _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); return err },
		"health list": func(ctx context.Context) error {
			_, err := hc.List(ctx, &healthpb.HealthListRequest{})
			return err
		},
		"send test": func(ctx context.Context) error {
			_, err := notify.SendTest(ctx, &treatyv1.SendTestRequest{})
			return err
		},
		"deliveries": func(ctx context.Context) error {
			_, err := notify.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{})
			return err
		},
		"check": func(ctx context.Context) error { _, err := decide.Check(ctx, &treatyv1.CheckRequest{}); return err },
		"unknown": func(ctx context.Context) error {
			return conn.Invoke(ctx, "/treaty.test.Unknown/Call", &treatyv1.WhoAmIRequest{}, &treatyv1.WhoAmIResponse{})
		},
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		call string
		want codes.Code
		msg  string // a part of the refusal's message
	}{
		{"health needs nothing", ctx, "health", codes.OK, ""},
		{"health with a bad token too", withAuth("Bearer nonsense"), "health", codes.OK, ""},
		{"health list needs a caller", ctx, "health list", codes.Unauthenticated, "no credential"},
		{"health list, any caller", bearer("pdp"), "health list", codes.OK, ""},
		{"no credential", ctx, "send test", codes.Unauthenticated, "no credential"},
		{"unknown token", withAuth("Bearer trt_" + strings.Repeat("A", 43)), "send test", codes.Unauthenticated, "not valid"},
		{"malformed token", withAuth("Bearer x"), "send test", codes.Unauthenticated, "not valid"},
		{"not bearer", withAuth("Basic dXNlcjpwYXNz"), "send test", codes.Unauthenticated, "Bearer"},
		{"lower-case scheme", withAuth("bearer " + e.tokens["ops"]), "send test", codes.OK, ""},
		{"operator sends a test", bearer("ops"), "send test", codes.OK, ""},
		{"admin sends a test", bearer("root"), "send test", codes.OK, ""},
		{"auditor may not", bearer("audit"), "send test", codes.PermissionDenied, "treaty.v1.NotifyService/SendTest needs one of the roles admin or operator; audit holds auditor"},
		{"auditor reads", bearer("audit"), "deliveries", codes.OK, ""},
		{"pdp client may not read", bearer("pdp"), "deliveries", codes.PermissionDenied, "admin, operator or auditor"},
		{"pdp client checks", bearer("pdp"), "check", codes.OK, ""},
		{"operator may not check", bearer("ops"), "check", codes.PermissionDenied, "admin or pdp-client"},
		{"service may not check", bearer("peer"), "check", codes.PermissionDenied, "pdp-client"},
		{"unknown method, even for admin", bearer("root"), "unknown", codes.PermissionDenied, "not in Treaty's access table"},
		{"unknown method, anonymous", ctx, "unknown", codes.Unauthenticated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call[tc.call](tc.ctx)
			if status.Code(err) != tc.want {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.want)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("message %q does not say %q", status.Convert(err).Message(), tc.msg)
			}
			for _, tok := range e.tokens {
				if strings.Contains(status.Convert(err).Message(), tok[4:]) {
					t.Errorf("message %q quotes a token", status.Convert(err).Message())
				}
			}
		})
	}
}

func TestRefusalIsRecorded(t *testing.T) {
	e := start(t, nil)
	notify := treatyv1.NewNotifyServiceClient(e.dial(t))
	if _, err := notify.SendTest(ctx, &treatyv1.SendTestRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	if _, err := notify.SendTest(withAuth("Bearer "+e.tokens["audit"]), &treatyv1.SendTestRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatal(err)
	}
	got := waitRefusals(t, e.acc, 2)
	if r := got[0]; r.Caller != "" || r.Via != "" || r.Code != "UNAUTHENTICATED" || r.Method != "/treaty.v1.NotifyService/SendTest" || !strings.HasPrefix(r.Peer, "127.0.0.1:") {
		t.Errorf("first refusal = %+v", r)
	}
	if r := got[1]; r.Caller != "audit" || r.Via != "token" || r.Code != "PERMISSION_DENIED" || !strings.Contains(r.Reason, "operator") {
		t.Errorf("second refusal = %+v", r)
	}
}

func waitRefusals(t *testing.T, acc *access.Access, n int) []access.Refusal {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := acc.Refusals(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals recorded, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeletedIdentityIsRefusedAtOnce(t *testing.T) {
	e := start(t, nil)
	notify := treatyv1.NewNotifyServiceClient(e.dial(t, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(authn.Token(e.tokens["ops"]))))
	if _, err := notify.SendTest(ctx, &treatyv1.SendTestRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := e.acc.DeleteIdentity(ctx, "ops", "root", "left the team"); err != nil {
		t.Fatal(err)
	}
	// The same connection, the next call.
	if _, err := notify.SendTest(ctx, &treatyv1.SendTestRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after delete: %v, want Unauthenticated", err)
	}
}

func TestActorIsTheCaller(t *testing.T) {
	e := start(t, nil)
	conn := e.dial(t)
	notify := treatyv1.NewNotifyServiceClient(conn)
	long := strings.Repeat("é", 200)
	for _, tc := range []struct{ caller, declared, want string }{
		{"ops", "", "ops"},
		{"ops", "ops", "ops"},
		{"ops", "alice", "ops/alice"},
		{"ops", "treaty-internal", "ops/treaty-internal"},
		{"root", "root/bob", "root/root/bob"},
		{"ops", long, ("ops/" + long)[:256]}, // clipped to 256 bytes without splitting a character
		{"ops", "x" + long, ("ops/x" + long)[:255]},
	} {
		resp, err := notify.SendTest(withAuth("Bearer "+e.tokens[tc.caller]), &treatyv1.SendTestRequest{Actor: tc.declared})
		if err != nil {
			t.Fatalf("%s as %q: %v", tc.caller, tc.declared, err)
		}
		if resp.GetNotificationId() != tc.want {
			t.Errorf("%s declaring %q: actor = %q, want %q", tc.caller, tc.declared, resp.GetNotificationId(), tc.want)
		}
		if resp.GetEndpoints()[0] != tc.caller || resp.GetEndpoints()[1] != "token" {
			t.Errorf("CallerFrom = %v", resp.GetEndpoints())
		}
	}
	// A client stream: every chunk's actor is rewritten.
	stream, err := treatyv1.NewInventoryServiceClient(conn).ImportInventory(withAuth("Bearer " + e.tokens["root"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"", "carol"} {
		if err := stream.Send(&treatyv1.ImportInventoryRequest{Actor: a}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if got := e.inv.actors; len(got) != 2 || got[0] != "root" || got[1] != "root/carol" {
		t.Errorf("streamed actors = %q", got)
	}
	// An operator may not import: refused before any chunk is read.
	stream, err = treatyv1.NewInventoryServiceClient(conn).ImportInventory(withAuth("Bearer " + e.tokens["ops"]))
	if err == nil {
		_, err = stream.CloseAndRecv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator's import: %v, want PermissionDenied", err)
	}
}

// TestClientCertificate authenticates by a verified client certificate's first URI SAN, else its
// CN, and refuses a verified certificate whose name is no identity.
func TestClientCertificate(t *testing.T) {
	ca := newCA(t)
	serverCert := ca.issue(t, "localhost", nil, true)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	e := start(t, &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS13})
	if _, _, err := e.acc.CreateIdentity(ctx, "spiffe://example.org/ns/prod/ops", []access.Role{access.RoleOperator}, false, "", "ops by SPIFFE ID"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.acc.CreateIdentity(ctx, "gw.example.org", []access.Role{access.RoleAuditor}, false, "", "gateway by CN"); err != nil {
		t.Fatal(err)
	}
	dial := func(cert *tls.Certificate) treatyv1.NotifyServiceClient {
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return treatyv1.NewNotifyServiceClient(e.dial(t, grpc.WithTransportCredentials(credentials.NewTLS(cfg))))
	}
	spiffe := ca.issue(t, "ignored-cn", mustURL(t, "spiffe://example.org/ns/prod/ops"), false)
	resp, err := dial(&spiffe).SendTest(ctx, &treatyv1.SendTestRequest{Actor: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNotificationId() != "spiffe://example.org/ns/prod/ops/dave" || resp.GetEndpoints()[1] != "certificate" {
		t.Errorf("by URI SAN: %v", resp)
	}
	cn := ca.issue(t, "gw.example.org", nil, false)
	if _, err := dial(&cn).SendTest(ctx, &treatyv1.SendTestRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("auditor by CN sending a test: %v, want PermissionDenied", err)
	}
	if _, err := dial(&cn).ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{}); err != nil {
		t.Errorf("auditor by CN reading: %v", err)
	}
	stranger := ca.issue(t, "stranger", nil, false)
	_, err = dial(&stranger).SendTest(ctx, &treatyv1.SendTestRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), `"stranger"`) {
		t.Errorf("unknown certificate name: %v, want Unauthenticated naming it", err)
	}
	// A token over TLS without a client certificate.
	if _, err := dial(nil).SendTest(withAuth("Bearer "+e.tokens["ops"]), &treatyv1.SendTestRequest{}); err != nil {
		t.Errorf("token over TLS: %v", err)
	}
	if _, err := dial(nil).SendTest(ctx, &treatyv1.SendTestRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("TLS without a credential: %v", err)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (ca testCA) issue(t *testing.T, cn string, uri *url.URL, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if uri != nil {
		tmpl.URIs = []*url.URL{uri}
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
