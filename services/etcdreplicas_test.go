package services

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// TestEtcdReplicas runs two full servers, each on its own data folder, on one etcd prefix of a
// three-member cluster, as two replicas behind a load balancer (docs/deployment.md): what is
// written through one is served by the other: a workload registered through the first gets a
// token from the second's issuer, signed with the one shared key; that token's assertion cannot
// be replayed on the first; the first's inventory lists the credential; a revocation through the
// first is enforced by the second's PDP, which follows the second's revoker replica; both replicas
// serve one feed; and once the first is gone, the second goes on revoking.
func TestEtcdReplicas(t *testing.T) {
	t.Cleanup(func() { awaitPeerConnsClosed(t) }) // registered first, so it runs after the cluster stops
	cluster := etcdtest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := Config{
		Store:     StoreConfig{Backend: BackendEtcd, Endpoints: cluster.Endpoints(), Prefix: "/treaty-replicas"},
		KEKFile:   writeKEK(t),
		IssuerURL: "https://treaty.test",
		DataDir:   t.TempDir(),
	}
	srv1, conn1 := serve(t, cfg)
	waitServing(ctx, t, srv1)
	// The operator brings the first replica's admin credential to the second's data folder.
	cred, err := os.ReadFile(filepath.Join(cfg.DataDir, AdminCredentialFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.DataDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg2.DataDir, AdminCredentialFile), cred, 0o600); err != nil {
		t.Fatal(err)
	}
	srv2, conn2 := serve(t, cfg2)
	waitServing(ctx, t, srv2)

	priv := onboard(ctx, t, conn1)
	assertion, err := issuer.SignAssertion("acme-bot", cfg.IssuerURL, priv, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(conn treatyv1.IssuerServiceClient) (*treatyv1.IssueTokenResponse, error) {
		return conn.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: assertion, Scopes: []string{"orders.read"}, Audience: "orders-api"})
	}
	// The second replica's PDP learns of the workload through its own revoker replica's watch
	// of the first's appends; until then its issuer may refuse, and the refusal consumes the
	// assertion's jti, so sign anew each time.
	var tok *treatyv1.IssueTokenResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tok, err = issue(treatyv1.NewIssuerServiceClient(conn2)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IssueToken on the second replica: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		if assertion, err = issuer.SignAssertion("acme-bot", cfg.IssuerURL, priv, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// One assertion, one credential, whichever replica it is shown to.
	if _, err := issue(treatyv1.NewIssuerServiceClient(conn1)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the assertion replayed on the first replica: %v, want UNAUTHENTICATED", err)
	}
	// Both publish the one shared signing key.
	keys1, err1 := treatyv1.NewIssuerServiceClient(conn1).ListSigningKeys(ctx, &treatyv1.ListSigningKeysRequest{})
	keys2, err2 := treatyv1.NewIssuerServiceClient(conn2).ListSigningKeys(ctx, &treatyv1.ListSigningKeysRequest{})
	if err1 != nil || err2 != nil || len(keys1.GetKeys()) != 1 || len(keys2.GetKeys()) != 1 || keys1.GetKeys()[0].GetKid() != keys2.GetKeys()[0].GetKid() {
		t.Fatalf("signing keys: first %v (%v), second %v (%v); want one shared key", keys1.GetKeys(), err1, keys2.GetKeys(), err2)
	}
	if c, err := treatyv1.NewIssuerServiceClient(conn1).GetCredential(ctx, &treatyv1.GetCredentialRequest{Id: tok.GetCredential().GetId()}); err != nil || c.GetCredential().GetWorkloadId() != "acme-bot" {
		t.Fatalf("the first replica's inventory: %v, %v; want the credential the second issued", c, err)
	}
	pdp1, pdp2 := treatyv1.NewDecisionServiceClient(conn1), treatyv1.NewDecisionServiceClient(conn2)
	expectDecision(ctx, t, pdp1, tok.GetAccessToken(), treatyv1.Decision_DECISION_ALLOW, "granted")
	expectDecision(ctx, t, pdp2, tok.GetAccessToken(), treatyv1.Decision_DECISION_ALLOW, "granted")

	rev1, rev2 := treatyv1.NewRevocationServiceClient(conn1), treatyv1.NewRevocationServiceClient(conn2)
	out, err := rev1.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
		TargetId: tok.GetCredential().GetId(), Reason: "leaked", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	expectDecision(ctx, t, pdp2, tok.GetAccessToken(), treatyv1.Decision_DECISION_DENY, "revoked")
	// One feed: the second replica's snapshot holds the first's revocation at its sequence.
	snap, err := rev2.Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil || snap.GetState().GetSequence() < out.GetSequence() {
		t.Fatalf("the second replica's feed: %v, %v; want it at sequence %d or later", snap.GetState().GetSequence(), err, out.GetSequence())
	}

	// The first replica goes away; the second serves on alone.
	srv1.Shutdown()
	a2, err := issuer.SignAssertion("acme-bot", cfg.IssuerURL, priv, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := treatyv1.NewIssuerServiceClient(conn2).IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: a2, Scopes: []string{"orders.read"}, Audience: "orders-api"})
	if err != nil {
		t.Fatalf("IssueToken on the second replica after the first stopped: %v", err)
	}
	out2, err := rev2.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
		TargetId: tok2.GetCredential().GetId(), Reason: "leaked", Actor: "test"})
	if err != nil || out2.GetSequence() <= out.GetSequence() {
		t.Fatalf("revoke on the second replica: %v, %v; want a sequence after %d", out2.GetSequence(), err, out.GetSequence())
	}
	expectDecision(ctx, t, pdp2, tok2.GetAccessToken(), treatyv1.Decision_DECISION_DENY, "revoked")
}
