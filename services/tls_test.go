package services

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/treaty-dev/treaty/certs"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/oauthhttp"
)

// devTLS writes a dev CA and certificates into a temporary folder and returns the server's TLS
// configuration and the folder.
func devTLS(t *testing.T) (TLSConfig, certs.DevFiles) {
	t.Helper()
	files, err := certs.WriteDev(filepath.Join(t.TempDir(), "certs"), certs.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return TLSConfig{CertFile: files.Server, KeyFile: files.ServerKey, ClientCAFile: files.CA, CAFile: files.CA}, files
}

// With TLS, every listener speaks TLS and may bind to every interface, the services of one
// process reach one another through it (at loopback, which the certificate names: the decision
// point catches up with the feed over TLS, so health says SERVING), and a plaintext client is
// refused.
func TestServeTLS(t *testing.T) {
	tlsCfg, files := devTLS(t)
	srv, err := Start(Config{
		DataDir: t.TempDir(), Listen: "0.0.0.0:0", HTTPListen: "127.0.0.1:0", TLS: tlsCfg,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if !strings.HasPrefix(srv.IssuerURL(), "https://") {
		t.Errorf("issuer URL %q, want https", srv.IssuerURL())
	}

	clientTLS, err := certs.ClientConfig(files.Clients[0].Cert, files.Clients[0].Key, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	addr := net.JoinHostPort("127.0.0.1", port)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitHealthServing(t, healthpb.NewHealthClient(conn))
	// The dev admin certificate (CN admin) authenticates as the admin identity, no token needed.
	ctx0, cancel0 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel0()
	who, err := treatyv1.NewAccessServiceClient(conn).WhoAmI(ctx0, &treatyv1.WhoAmIRequest{})
	if err != nil || who.GetName() != "admin" || who.GetVia() != "certificate" {
		t.Fatalf("WhoAmI with the admin certificate: %v %v, want admin via certificate", who, err)
	}

	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("a plaintext client was served by a TLS listener")
	}

	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: clientTLS.RootCAs}}}
	resp, err := httpClient.Get("https://" + srv.HTTPAddr() + oauthhttp.PathJWKS)
	if err != nil {
		t.Fatalf("JWKS over https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("JWKS over https: %s", resp.Status)
	}
}

// waitHealthServing waits until the server's health service says SERVING.
func waitHealthServing(t *testing.T, health healthpb.HealthClient) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 15s: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A peer's CA bundle replaced on disk (a new CA, and the server's certificate from it) is trusted
// by the next connection to that peer, without a restart: the peer credentials read the bundle
// at each handshake. A tls.Config made once, as they were before, keeps the old CA.
func TestPeerCredentialsTrustANewCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := certs.WriteDev(dir, certs.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	load := func() *certs.Files {
		f, err := certs.Load(files.Server, files.ServerKey, files.CA, files.CA, certs.WithCheckInterval(0), certs.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	server, peer := load(), load()
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(server.ServerConfig())))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	creds := peerTLS{files: peer}
	call := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call(creds); err != nil {
		t.Fatalf("before the new CA: %v", err)
	}
	once := credentials.NewTLS(peer.ClientConfig())

	if _, err := certs.WriteDev(dir, certs.DevOptions{Force: true}); err != nil { // a new CA, and every certificate from it
		t.Fatal(err)
	}
	if err := call(creds); err != nil {
		t.Fatalf("a new connection after the new CA: %v", err)
	}
	if err := call(once); err == nil {
		t.Error("a config made before the new CA trusted the server's new certificate: this test shows nothing")
	}
}
