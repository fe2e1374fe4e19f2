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
