package reportsvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/services/reportsvc"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

const issuerURL = "https://treaty.test"

// env is a real registry and revoker on bbolt, a real PDP following the revoker over loopback
// gRPC, a real issuer with its inventory, and the report service over them, served on loopback.
type env struct {
	t       *testing.T
	ctx     context.Context
	clock   *issuertest.Clock
	reg     *registry.Registry
	rev     *revoker.Log
	iss     *issuer.Issuer
	keys    map[string]ed25519.PrivateKey
	seqs    map[string]uint64
	runner  *posture.Runner
	client  treatyv1.ReportServiceClient
	conn    *grpc.ClientConn
	newOnes [][]posture.Finding
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clock: &issuertest.Clock{}, keys: map[string]ed25519.PrivateKey{}, seqs: map[string]uint64{}}
	// goLoop runs fn until the test ends; its cleanup, registered after the stores fn uses were
	// opened, stops it before they close.
	goLoop := func(fn func(ctx context.Context)) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); fn(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	var err error
	if e.rev, err = revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{}); err != nil {
		t.Fatal(err)
	}
	regStore := storetest.OpenBolt(t, registry.Schema)
	regRelay := outbox.NewRelay(regStore, e.rev, quiet)
	goLoop(regRelay.Run)
	if e.reg, err = registry.New(registry.Config{Store: regStore, Relay: regRelay, Now: e.clock.Now, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	peers := grpctest.Serve(t, func(r grpc.ServiceRegistrar) {
		registrysvc.New(registrysvc.Config{Registry: e.reg, Logger: quiet}).Register(r)
		revokersvc.New(revokersvc.Config{Log: e.rev, Logger: quiet}).Register(r)
	})
	p, err := pdp.New(pdp.Config{Store: storetest.OpenBolt(t, pdp.Schema), Source: revokersvc.NewSource(peers), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	goLoop(func(ctx context.Context) { p.Run(ctx) })
	issStore := storetest.OpenBolt(t, issuer.Schema)
	issRelay := outbox.NewRelay(issStore, e.rev, quiet)
	goLoop(issRelay.Run)
	if e.iss, err = issuer.New(issuer.Config{
		Store: issStore, Relay: issRelay, Directory: registrysvc.NewDirectory(peers), Authorizer: pdpsvc.NewLocalAuthorizer(p),
		IssuerURL: issuerURL, Now: e.clock.Now, Logger: quiet, DataDir: filepath.Join(t.TempDir()),
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.iss.Close() })
	issConn := grpctest.Serve(t, issuersvc.New(issuersvc.Config{Issuer: e.iss, Logger: quiet}).Register)

	g, err := reportsvc.NewGatherer(reportsvc.GatherConfig{
		Registry: e.reg, Credentials: issuersvc.NewCredentialSource(issConn), Now: e.clock.Now, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.runner, err = posture.NewRunner(posture.RunnerConfig{Gather: g.Gather, Logger: quiet,
		OnNew: func(_ context.Context, fs []posture.Finding) { e.newOnes = append(e.newOnes, fs) }}); err != nil {
		t.Fatal(err)
	}
	e.conn = grpctest.Serve(t, reportsvc.New(reportsvc.Config{
		Runner: e.runner, Gatherer: g, Revocations: reportsvc.RevocationsFromRevoker(peers), MaxCredentialTTL: time.Hour, Logger: quiet,
	}).Register)
	e.client = treatyv1.NewReportServiceClient(e.conn)
	return e
}

// partner creates an active partner.
func (e *env) partner(p registry.Partner) {
	e.t.Helper()
	if p.DisplayName == "" {
		p.DisplayName = p.ID
	}
	if p.OwnerTeam == "" {
		p.OwnerTeam = "security"
	}
	if p.ContractEnd.IsZero() {
		p.ContractEnd = e.clock.Now().Add(365 * 24 * time.Hour)
	}
	if _, _, err := e.reg.CreatePartner(e.ctx, p, "alice", registry.CreateOptions{Activate: true, ApprovedBy: "bob"}); err != nil {
		e.t.Fatalf("create partner %s: %v", p.ID, err)
	}
}

// integration creates an active integration with scopes a and b for audience api.
func (e *env) integration(in registry.Integration) {
	e.t.Helper()
	if in.AllowedScopes == nil {
		in.AllowedScopes = []string{"a", "b"}
	}
	in.Audiences = []string{"api"}
	if in.MaxTTL == 0 {
		in.MaxTTL = time.Hour
	}
	if in.Environment == "" {
		in.Environment = "production"
	}
	if _, _, err := e.reg.CreateIntegration(e.ctx, in, "alice", registry.CreateOptions{Activate: true, ApprovedBy: "bob"}); err != nil {
		e.t.Fatalf("create integration %s: %v", in.ID, err)
	}
}

// workload creates a workload with a fresh Ed25519 key.
func (e *env) workload(id, integration string) {
	e.t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	_, seq, err := e.reg.CreateWorkload(e.ctx, id, integration, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "", "alice")
	if err != nil {
		e.t.Fatalf("create workload %s: %v", id, err)
	}
	e.keys[id], e.seqs[id] = priv, seq
}

// issue mints a credential for workload id with scope a.
func (e *env) issue(id string) issuer.Credential {
	e.t.Helper()
	a, err := issuer.SignAssertion(id, issuerURL, e.keys[id], e.clock.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.iss.Issue(e.ctx, issuer.Request{Assertion: a, Scopes: []string{"a"}, Audience: "api", MinSequence: e.seqs[id]})
	if err != nil {
		e.t.Fatalf("issue for %s: %v", id, err)
	}
	return out.Credential
}
