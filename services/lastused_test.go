package services

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// onboardWorkload creates an active partner acme, its integration acme-crm and a workload
// acme-crm-sync with a fresh Ed25519 key, through the registry, and returns the key.
func onboardWorkload(ctx context.Context, t *testing.T, reg treatyv1.RegistryServiceClient) ed25519.PrivateKey {
	t.Helper()
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Partner: &treatyv1.Partner{Id: "acme", DisplayName: "Acme", OwnerTeam: "payments",
			ContractEndTime: timestamppb.New(time.Now().Add(365 * 24 * time.Hour))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Integration: &treatyv1.Integration{Id: "acme-crm", PartnerId: "acme", AllowedScopes: []string{"orders.read"},
			Audiences: []string{"https://api.example.com"}, MaxCredentialTtl: durationpb.New(10 * time.Minute),
			Environment: "production", Owner: "payments"}}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "acme-crm-sync", IntegrationId: "acme-crm", Actor: "alice",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}); err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestServeWorkloadLastUsed: a token checked at the PDP shows up, once the PDP has reported its
// usage batch to the issuer, as the workload's last use in the registry's GetWorkload and
// ListWorkloads.
func TestServeWorkloadLastUsed(t *testing.T) {
	srv, conn := serve(t, Config{UsageInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !srv.Ready() {
		if ctx.Err() != nil {
			t.Fatal("the server is not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	reg := treatyv1.NewRegistryServiceClient(conn)
	key := onboardWorkload(ctx, t, reg)

	w, err := reg.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "acme-crm-sync"})
	if err != nil || w.GetWorkload().GetLastUseTime() != nil {
		t.Fatalf("a workload that never used a credential: last used %v, %v; want none", w.GetWorkload().GetLastUseTime(), err)
	}

	iss := treatyv1.NewIssuerServiceClient(conn)
	info, err := iss.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := issuer.SignAssertion("acme-crm-sync", info.GetIssuer(), key, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: assertion, Scopes: []string{"orders.read"}, Audience: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	d, err := treatyv1.NewDecisionServiceClient(conn).Check(ctx, &treatyv1.CheckRequest{
		Subject: &treatyv1.CheckRequest_Token{Token: tok.GetAccessToken()}, Action: "orders.read", Resource: "https://api.example.com"})
	if err != nil || d.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
		t.Fatalf("Check = %v %v, %v; want allow", d.GetDecision(), d.GetReasons(), err)
	}
	after := time.Now()

	// The PDP reports usage in batches; wait for the issuer to have it (30 s, generous).
	deadline := time.Now().Add(30 * time.Second)
	var last *timestamppb.Timestamp
	for {
		w, err := reg.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "acme-crm-sync"})
		if err != nil {
			t.Fatal(err)
		}
		if last = w.GetWorkload().GetLastUseTime(); last != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last == nil {
		t.Fatal("GetWorkload shows no last use 30 s after the PDP allowed a request with its credential")
	}
	// The PDP records when it decided; allow for clock granularity and a loaded machine.
	if got := last.AsTime(); got.Before(before.Add(-5*time.Second)) || got.After(after.Add(5*time.Second)) {
		t.Errorf("last used %v, want about %v", got, before)
	}
	list, err := reg.ListWorkloads(ctx, &treatyv1.ListWorkloadsRequest{IntegrationId: "acme-crm"})
	if err != nil || len(list.GetWorkloads()) != 1 || !list.GetWorkloads()[0].GetLastUseTime().AsTime().Equal(last.AsTime()) {
		t.Fatalf("ListWorkloads = %v, %v; want acme-crm-sync last used at %v", list.GetWorkloads(), err, last.AsTime())
	}
	// The issuer's own reads (the basic view) never ask it for last use.
	basic, err := reg.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "acme-crm-sync", View: treatyv1.WorkloadView_WORKLOAD_VIEW_BASIC})
	if err != nil || basic.GetWorkload().GetId() != "acme-crm-sync" || basic.GetWorkload().GetLastUseTime() != nil {
		t.Errorf("GetWorkload(BASIC) = %v, %v; want the record without last_use_time", basic.GetWorkload(), err)
	}
	if _, err := reg.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "acme-crm-sync", View: 99}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetWorkload(view 99) = %v, want INVALID_ARGUMENT", err)
	}
}

// TestServeWorkloadLastUsedIssuerDown: with the issuer unreachable, the registry still answers
// GetWorkload and ListWorkloads promptly, without a last use.
func TestServeWorkloadLastUsedIssuerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	_, conn := serve(t, Config{Services: []string{Registry, Revoker},
		Peers: map[string]string{Issuer: dead}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := treatyv1.NewRegistryServiceClient(conn)
	onboardWorkload(ctx, t, reg)
	w, err := reg.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: "acme-crm-sync"})
	if err != nil || w.GetWorkload().GetId() != "acme-crm-sync" || w.GetWorkload().GetLastUseTime() != nil {
		t.Fatalf("GetWorkload with the issuer down = %v, %v; want the workload without a last use", w.GetWorkload(), err)
	}
	list, err := reg.ListWorkloads(ctx, &treatyv1.ListWorkloadsRequest{})
	if err != nil || len(list.GetWorkloads()) != 1 || list.GetWorkloads()[0].GetLastUseTime() != nil {
		t.Fatalf("ListWorkloads with the issuer down = %v, %v; want one workload without a last use", list.GetWorkloads(), err)
	}
}
