package services

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// TestEtcdSharedAccess runs two servers, each on its own data folder, on one etcd prefix, as
// replicas behind one load balancer: the second finds the admin the first created (and writes no
// credential of its own, saying in its log where to get it); an identity created through one
// authenticates on the other, and its token, once rotated or the identity deleted through one,
// stops working on the other; and each keeps the refusals it made in its own data folder.
func TestEtcdSharedAccess(t *testing.T) {
	t.Cleanup(func() { awaitPeerConnsClosed(t) }) // registered first, so it runs after the cluster stops
	cluster := etcdtest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{
		Services: []string{Revoker},
		Store:    StoreConfig{Backend: BackendEtcd, Endpoints: cluster.Endpoints(), Prefix: "/treaty-access"},
		DataDir:  t.TempDir(),
	}
	srv1, admin1 := serve(t, cfg)

	cfg2 := cfg
	cfg2.DataDir, cfg2.Listen = t.TempDir(), "127.0.0.1:0"
	var log2 logtest.Buffer
	cfg2.Logger = slog.New(slog.NewTextHandler(&log2, nil))
	srv2, err := Start(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Shutdown)
	waitServing(ctx, t, srv1)
	waitServing(ctx, t, srv2)
	if _, err := os.Stat(filepath.Join(cfg2.DataDir, AdminCredentialFile)); !os.IsNotExist(err) {
		t.Errorf("the second server wrote an admin credential (%v): it should find the first's admin", err)
	}
	if srv2.BootstrapToken() != "" {
		t.Error("the second server bootstrapped an admin of its own")
	}
	if !strings.Contains(log2.String(), "the admin identity exists in the shared access store") {
		t.Errorf("the second server's log does not say where the admin credential is: %s", log2.String())
	}
	// The first server's admin credential works on the second.
	admin2 := dialAdmin(t, srv2, cfg.DataDir)
	acc1, acc2 := treatyv1.NewAccessServiceClient(admin1), treatyv1.NewAccessServiceClient(admin2)
	if ids, err := acc2.ListIdentities(ctx, &treatyv1.ListIdentitiesRequest{}); err != nil || len(ids.GetIdentities()) != 1 {
		t.Fatalf("ListIdentities on the second server = %v, %v; want the first's admin alone", ids, err)
	}

	created, err := acc1.CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{
		Name: "auditor-1", Roles: []string{"auditor"}, IssueToken: true, Reason: "quarterly review", Actor: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	whoami := func(srv *Server, tok string) (string, error) {
		resp, err := treatyv1.NewAccessServiceClient(dialToken(t, srv, tok)).WhoAmI(ctx, &treatyv1.WhoAmIRequest{})
		return resp.GetName(), err
	}
	eventuallyCode := func(what string, srv *Server, tok string, want codes.Code) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			name, err := whoami(srv, tok)
			if status.Code(err) == want && (want != codes.OK || name == "auditor-1") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: WhoAmI = %q, %v; want %v", what, name, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventuallyCode("created on the first, called on the second", srv2, created.GetToken(), codes.OK)

	rotated, err := acc2.RotateToken(ctx, &treatyv1.RotateTokenRequest{Name: "auditor-1", Reason: "leaked", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	eventuallyCode("rotated on the second, old token on the first", srv1, created.GetToken(), codes.Unauthenticated)
	eventuallyCode("rotated on the second, new token on the first", srv1, rotated.GetToken(), codes.OK)

	if _, err := acc1.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: "auditor-1", Reason: "review over", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	eventuallyCode("deleted on the first, called on the second", srv2, rotated.GetToken(), codes.Unauthenticated)

	// Each server keeps the refusals it made in its own data folder, never in the cluster: anyone
	// can cause them. The first refused the rotated token, the second the deleted identity's.
	for i, c := range []treatyv1.AccessServiceClient{acc1, acc2} {
		dir := []string{cfg.DataDir, cfg2.DataDir}[i]
		if _, err := os.Stat(filepath.Join(dir, "refusals.db")); err != nil {
			t.Errorf("server %d keeps no local refusal log: %v", i+1, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			refs, err := c.ListRefusals(ctx, &treatyv1.ListRefusalsRequest{PageSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(refs.GetRefusals()) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %d recorded no refusal", i+1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	resp, err := cluster.Client().Get(ctx, cfg.Store.Prefix+"/access/refusals/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%v refusals in the cluster (%v), want none", resp.Count, err)
	}
}
