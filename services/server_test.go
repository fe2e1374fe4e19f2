package services

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/treaty-dev/treaty/issuer"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	eps := []string{"http://127.0.0.1:2379"}
	t.Setenv(issuer.KEKEnv, "") // the etcd backend with the issuer needs a shared KEK
	tests := []struct {
		cfg  Config
		want string // empty: valid
	}{
		{Config{DataDir: dir}, ""},
		{Config{DataDir: dir, Listen: "localhost:0"}, ""},
		{Config{DataDir: dir, Listen: "[::1]:7433"}, ""},
		{Config{DataDir: dir, Services: []string{PDP}, Peers: map[string]string{Revoker: "127.0.0.1:1"}}, ""},
		{Config{}, "--data is required"},
		{Config{DataDir: dir, Listen: "0.0.0.0:7433"}, "not a loopback address"},
		{Config{DataDir: dir, Listen: ":7433"}, "not a loopback address"},
		{Config{DataDir: dir, Listen: "10.0.0.1:7433"}, "not a loopback address"},
		{Config{DataDir: dir, Listen: "nonsense"}, "--listen"},
		{Config{DataDir: dir, Listen: "0.0.0.0:7433", Insecure: true}, ""},
		{Config{DataDir: dir, Listen: "0.0.0.0:7433", TLS: TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}}, ""},
		{Config{DataDir: dir, TLS: TLSConfig{CertFile: "c.pem"}}, "--tls-cert and --tls-key go together"},
		{Config{DataDir: dir, TLS: TLSConfig{ClientCAFile: "ca.pem"}}, "--client-ca verifies client certificates over TLS"},
		{Config{DataDir: dir, Services: []string{"billing"}}, `unknown service "billing"`},
		{Config{DataDir: dir, Services: []string{Issuer, Revoker}}, "the issuer service needs the registry"},
		{Config{DataDir: dir, IssuerURL: "issuer.example"}, "--issuer-url"},
		{Config{DataDir: dir, MaxCredentialTTL: time.Second}, "--max-credential-ttl"},
		{Config{DataDir: dir, Heartbeat: 5 * time.Second, StalenessBound: time.Second}, "--staleness-bound"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, Prefix: "/t"}, KEKFile: "kek", IssuerURL: "https://treaty.test"}, ""},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, Prefix: "/t"}, KEKFile: "kek", HTTPBaseURL: "https://treaty.test", HTTPListen: "127.0.0.1:0"}, ""},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, Prefix: "/t"}, KEKFile: "kek", HTTPBaseURL: "https://treaty.test"}, "give each the same --issuer-url"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, Prefix: "/t"}, KEKFile: "kek"}, "give each the same --issuer-url"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps}, Services: []string{Revoker}}, ""},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "postgres"}}, `--store "postgres"`},
		{Config{DataDir: dir, Store: StoreConfig{Endpoints: eps}}, "add --store etcd"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd"}, KEKFile: "kek"}, "--store etcd needs --etcd-endpoints"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: []string{"10.0.0.1:2379"}}, KEKFile: "kek"}, "must be an http(s) URL"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: []string{"https://10.0.0.1:2379"}}, KEKFile: "kek"}, "give --etcd-ca"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: []string{"https://10.0.0.1:2379"}, CAFile: "ca.pem"}, KEKFile: "kek", IssuerURL: "https://treaty.test"}, ""},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, CertFile: "c.pem"}, KEKFile: "kek"}, "--etcd-cert and --etcd-key go together"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps, Prefix: "treaty/"}, KEKFile: "kek"}, "--etcd-prefix"},
		{Config{DataDir: dir, Store: StoreConfig{Backend: "etcd", Endpoints: eps}}, "same --kek-file"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestStartServeShutdown starts all four services in one process on a free port and checks what
// a probe and grpcurl rely on: health (overall and per service) and reflection.
func TestStartServeShutdown(t *testing.T) {
	srv, conn := serve(t, Config{})
	health := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not SERVING after 30s: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !srv.Ready() {
		t.Error("health says SERVING but Ready is false")
	}
	for _, name := range serviceNames {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %s = %v, %v", name, resp, err)
		}
	}
	if !strings.HasPrefix(srv.IssuerURL(), "http://127.0.0.1:") {
		t.Errorf("default issuer URL = %q", srv.IssuerURL())
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		listed[s.GetName()] = true
	}
	for _, name := range serviceNames {
		if !listed[name] {
			t.Errorf("reflection does not list %s (got %v)", name, listed)
		}
	}
	stream.CloseSend()

	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

func TestStartRefusesALockedDataFolder(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	first, err := Start(Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown()
	if second, err := Start(Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet}); err == nil {
		second.Shutdown()
		t.Fatal("a second server opened the same data folder")
	} else if !strings.Contains(err.Error(), "another treaty process") {
		t.Errorf("error = %v, want it to say another process holds the folder", err)
	}
}
