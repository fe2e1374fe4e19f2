package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TestGRPC runs the health service over credentials.NewTLS with these configs, as treaty serve
// and its peers will, and checks the identity the server sees.
func TestGRPC(t *testing.T) {
	dir, dev := devDir(t)
	_, other := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	peerFiles := load(t, dir, &log)

	seen := make(chan string, 1)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(server.ServerConfig())),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			name := ""
			if p, ok := peer.FromContext(ctx); ok {
				if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
					name = peerName(info.State)
				}
			}
			seen <- name
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()

	for _, tt := range []struct {
		name     string
		client   *tls.Config
		wantCode codes.Code
		wantName string
	}{
		{"peer with the server certificate", peerFiles.ClientConfig(), codes.OK, ServiceName},
		{"CLI with a client certificate", cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA), codes.OK, "admin"},
		{"CLI without a certificate", cliConfig(t, "", "", dev.CA), codes.OK, ""},
		{"server not trusted", cliConfig(t, "", "", other.CA), codes.Unavailable, ""},
		{"client certificate of another CA", cliConfig(t, other.Clients[0].Cert, other.Clients[0].Key, dev.CA), codes.Unavailable, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tt.client)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("Check: %v, want %v", err, tt.wantCode)
			}
			if err != nil {
				return
			}
			if resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("status %v", resp.Status)
			}
			if name := <-seen; name != tt.wantName {
				t.Errorf("server saw %q, want %q", name, tt.wantName)
			}
		})
	}
}

// TestHTTP serves HTTP/1.1 and HTTP/2 with ServerConfig, as the HTTP listener does.
func TestHTTP(t *testing.T) {
	dir, dev := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := ""
		if r.TLS != nil {
			name = peerName(*r.TLS)
		}
		io.WriteString(w, r.Proto+" "+name)
	}))
	ts.TLS = server.ServerConfig()
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()

	for _, tt := range []struct {
		name  string
		http2 bool
		want  string
	}{
		{"HTTP/1.1", false, "HTTP/1.1 admin"},
		{"HTTP/2", true, "HTTP/2.0 admin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA), ForceAttemptHTTP2: tt.http2}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.want {
				t.Errorf("got %q, want %q", body, tt.want)
			}
		})
	}
}
