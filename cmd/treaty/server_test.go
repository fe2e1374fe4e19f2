package main

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/services"
)

// startServer starts the services cfg names in this process on a loopback port with a temporary
// data folder, waits until they are ready, and returns the server, a connection authenticated as
// its admin, and the CLI flags that authenticate the same way. Everything stops when the test
// ends.
func startServer(t *testing.T, cfg services.Config) (*services.Server, *grpc.ClientConn, []string) {
	t.Helper()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := services.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	for deadline := time.Now().Add(30 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server is not ready after 30s")
		}
	}
	conn := issuertest.DialAdmin(t, srv.Addr(), cfg.DataDir)
	return srv, conn, []string{"--server", srv.Addr(), "--credential-file", filepath.Join(cfg.DataDir, services.AdminCredentialFile)}
}
