package services

import (
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/treaty-dev/treaty/services/authn"
)

// serve starts the services cfg names (all four when it names none) in this process on a free
// loopback port, with a temporary data folder and discarded logs unless cfg sets them, and returns
// the server and a client connection to it; both are closed when the test ends.
func serve(t *testing.T, cfg Config) (*Server, *grpc.ClientConn) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, dialAdmin(t, srv, cfg.DataDir)
}

// dialAdmin returns a connection to srv that authenticates as the admin identity its first start
// created in dataDir; it is closed when the test ends.
func dialAdmin(t testing.TB, srv *Server, dataDir string) *grpc.ClientConn {
	t.Helper()
	creds, err := authn.TokenFile(filepath.Join(dataDir, AdminCredentialFile))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
