package services

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// TestEtcdBackend runs every service with the registry's, issuer's, revoker's and the callers'
// identities' state in a real three-member etcd cluster: revocations are acknowledged and
// enforced while one member is down; with two down (no quorum) a revocation fails UNAVAILABLE
// within the request timeout while the PDP goes on answering from its own cache; once the members
// are back, revocations flow again; and a new server on the same prefix, with a new data folder,
// finds partners, credentials, the feed and the callers' identities where they were.
func TestEtcdBackend(t *testing.T) {
	t.Cleanup(func() { awaitPeerConnsClosed(t) }) // registered first, so it runs after the cluster stops
	cluster := etcdtest.Start(t, 3)
	cfg := Config{
		Store:   StoreConfig{Backend: BackendEtcd, Endpoints: cluster.Endpoints(), Prefix: "/treaty-test"},
		KEKFile: writeKEK(t),
		// Every replica, and this test's restart on a new data folder, names one issuer.
		IssuerURL: "https://treaty.test",
		DataDir:   t.TempDir(),
	}
	srv, conn := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitServing(ctx, t, srv)

	priv := onboard(ctx, t, conn)
	iss := treatyv1.NewIssuerServiceClient(conn)
	var toks, jtis []string
	for range 4 {
		a, err := issuer.SignAssertion("acme-bot", srv.IssuerURL(), priv, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders.read"}, Audience: "orders-api"})
		if err != nil {
			t.Fatalf("IssueToken: %v", err)
		}
		toks, jtis = append(toks, resp.GetAccessToken()), append(jtis, resp.GetCredential().GetId())
	}
	pdp := treatyv1.NewDecisionServiceClient(conn)
	rev := treatyv1.NewRevocationServiceClient(conn)
	revoke := func(ctx context.Context, i int) (*treatyv1.RevokeResponse, error) {
		return rev.Revoke(ctx, &treatyv1.RevokeRequest{
			TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jtis[i], Reason: "test", Actor: "test",
			RequestId: fmt.Sprintf("revoke-%d", i),
		})
	}
	expectDecision(ctx, t, pdp, toks[0], treatyv1.Decision_DECISION_ALLOW, "granted")

	// One member down: a majority remains, and every revocation is acknowledged and enforced.
	cluster.Stop(0)
	for i := range 2 {
		if _, err := revoke(ctx, i); err != nil {
			t.Fatalf("revoke credential %d with one etcd member down: %v", i, err)
		}
		expectDecision(ctx, t, pdp, toks[i], treatyv1.Decision_DECISION_DENY, "revoked")
	}
	// A registry write, published to the revoker through its outbox: both stores in etcd.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	if _, err := treatyv1.NewRegistryServiceClient(conn).CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{
		Id: "acme-relay", IntegrationId: "acme-api", Actor: "test",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}); err != nil {
		t.Fatalf("CreateWorkload with one etcd member down: %v", err)
	}
	waitFeedWorkload(ctx, t, rev, "acme-relay")

	// Two down: no quorum. The revocation fails UNAVAILABLE, bounded by etcdstore's request
	// timeout rather than the caller's deadline, and the PDP answers from what it has.
	cluster.Stop(1)
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = revoke(rctx, 2)
	rcancel()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("revoke with two of three etcd members down = %v, want UNAVAILABLE", err)
	}
	took := time.Since(start)
	if took > 20*time.Second {
		t.Fatalf("the refused revocation took %v; it should end with the store's request timeout", took)
	}
	t.Logf("without quorum, the revocation was refused after %v: %v", took.Round(time.Millisecond), err)
	if resp, err := check(ctx, pdp, toks[0]); err != nil || resp.GetDecision() != treatyv1.Decision_DECISION_DENY {
		t.Fatalf("PDP without etcd quorum: Check = %v, %v; want an answer (deny) from its cache", resp, err)
	}
	// The revoker serves the feed from memory, so the PDP stays current and allows live tokens.
	expectDecision(ctx, t, pdp, toks[3], treatyv1.Decision_DECISION_ALLOW, "granted")

	// Members back: revocations flow again (the one refused above included; its request id makes
	// it land once if etcd applied it after all).
	cluster.Restart(0)
	cluster.Restart(1)
	retryUnavailable(ctx, t, func(ctx context.Context) error { _, err := revoke(ctx, 2); return err })
	expectDecision(ctx, t, pdp, toks[2], treatyv1.Decision_DECISION_DENY, "revoked")
	expectDecision(ctx, t, pdp, toks[3], treatyv1.Decision_DECISION_ALLOW, "granted")
	snap, err := rev.Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	head := snap.GetState().GetSequence()
	// A backup cannot copy stores kept in etcd; it says how to back them up.
	_, err = treatyv1.NewAdminServiceClient(conn).Backup(ctx, &treatyv1.BackupRequest{OutPath: filepath.Join(t.TempDir(), "x.backup")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "etcdctl snapshot save") {
		t.Fatalf("Backup with etcd-kept stores = %v, want FAILED_PRECONDITION naming etcdctl snapshot save", err)
	}

	// A new server on the same prefix, with a new data folder (a new PDP cache and decision
	// log): the shared state is all in etcd, the callers' identities too, so the new server
	// creates no admin, and the operator brings the first's credential along.
	srv.Shutdown()
	cred, err := os.ReadFile(filepath.Join(cfg.DataDir, AdminCredentialFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, AdminCredentialFile), cred, 0o600); err != nil {
		t.Fatal(err)
	}
	srv2, conn2 := serve(t, cfg)
	waitServing(ctx, t, srv2)
	reg2 := treatyv1.NewRegistryServiceClient(conn2)
	if p, err := reg2.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: "acme"}); err != nil || p.GetPartner().GetDisplayName() != "Acme" {
		t.Fatalf("GetPartner after the restart = %v, %v", p, err)
	}
	creds, err := treatyv1.NewIssuerServiceClient(conn2).ListCredentials(ctx, &treatyv1.ListCredentialsRequest{PartnerId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range creds.GetCredentials() {
		got = append(got, c.GetId())
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(jtis)); !slices.Equal(got, want) {
		t.Fatalf("credentials after the restart = %v, want %v", got, want)
	}
	snap2, err := treatyv1.NewRevocationServiceClient(conn2).Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil || snap2.GetState().GetEpoch() != snap.GetState().GetEpoch() || snap2.GetState().GetSequence() < head {
		t.Fatalf("feed after the restart: %v, %v; want epoch %s at sequence >= %d", snap2.GetState().GetEpoch(), err, snap.GetState().GetEpoch(), head)
	}
	pdp2 := treatyv1.NewDecisionServiceClient(conn2)
	for i := range 3 {
		expectDecision(ctx, t, pdp2, toks[i], treatyv1.Decision_DECISION_DENY, "revoked")
	}
	expectDecision(ctx, t, pdp2, toks[3], treatyv1.Decision_DECISION_ALLOW, "granted")
	// The signing keys, sealed with the shared KEK, open in the new process: it signs as before.
	a, err := issuer.SignAssertion("acme-bot", srv2.IssuerURL(), priv, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := treatyv1.NewIssuerServiceClient(conn2).IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a, Scopes: []string{"orders.read"}, Audience: "orders-api"}); err != nil {
		t.Fatalf("IssueToken after the restart: %v", err)
	}
}

// writeKEK writes a key-encryption key file, which every server sharing an etcd prefix needs.
func writeKEK(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// onboard creates the partner acme, its integration acme-api and workload acme-bot, and returns
// the workload's private key.
func onboard(ctx context.Context, t *testing.T, conn *grpc.ClientConn) ed25519.PrivateKey {
	t.Helper()
	reg := treatyv1.NewRegistryServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "test", Activate: true, ApprovedBy: "test", Partner: &treatyv1.Partner{
		Id: "acme", DisplayName: "Acme", OwnerTeam: "partnerships", ContractEndTime: timestamppb.New(time.Now().Add(90 * 24 * time.Hour)),
	}}); err != nil {
		t.Fatalf("CreatePartner: %v", err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "test", Activate: true, ApprovedBy: "test", Integration: &treatyv1.Integration{
		Id: "acme-api", PartnerId: "acme", Environment: "production", AllowedScopes: []string{"orders.read"},
		Audiences: []string{"orders-api"}, MaxCredentialTtl: durationpb.New(time.Hour),
	}}); err != nil {
		t.Fatalf("CreateIntegration: %v", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	if _, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{
		Id: "acme-bot", IntegrationId: "acme-api", Actor: "test",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}); err != nil {
		t.Fatalf("CreateWorkload: %v", err)
	}
	return priv
}

func check(ctx context.Context, pdp treatyv1.DecisionServiceClient, tok string) (*treatyv1.CheckResponse, error) {
	return pdp.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "orders.read", Resource: "orders-api"})
}

// expectDecision waits (the PDP follows the feed) until the PDP decides want for tok with reason.
func expectDecision(ctx context.Context, t *testing.T, pdp treatyv1.DecisionServiceClient, tok string, want treatyv1.Decision, reason string) {
	t.Helper()
	var last *treatyv1.CheckResponse
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := check(ctx, pdp, tok)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if last = resp; resp.GetDecision() == want && slices.Contains(resp.GetReasons(), reason) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("Check = %v %v, want %v with reason %s", last.GetDecision(), last.GetReasons(), want, reason)
}

// retryUnavailable calls fn until it succeeds, retrying UNAVAILABLE for up to 20 s (the etcd
// client reconnects to members that come back).
func retryUnavailable(ctx context.Context, t *testing.T, fn func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitPeerConnsClosed waits until the HTTP connections between the stopped members of an embedded
// cluster (etcd's rafthttp transport) have ended: after the members close, a client keep-alive
// connection and its server side wait on each other until rafthttp's read timeout (5 s), and
// goleak, which checks the whole package when its tests end, would otherwise report them.
func awaitPeerConnsClosed(t *testing.T) {
	deadline := time.Now().Add(15 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "net/http.(*persistConn).readLoop") && !strings.Contains(stacks, "cmux.(*MuxConn).Read") {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("etcd's peer connections still open 15s after the cluster stopped")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFeedWorkload waits until the revoker's feed holds workload id.
func waitFeedWorkload(ctx context.Context, t *testing.T, rev treatyv1.RevocationServiceClient, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		snap, err := rev.Snapshot(ctx, &treatyv1.SnapshotRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range snap.GetState().GetWorkloads() {
			if w.GetWorkload().GetWorkloadId() == id {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("workload %s never reached the feed", id)
}
