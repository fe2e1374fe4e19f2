package issuersvc_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The fixture world, onboarded through the real registry: partner acme with integration
// acme-billing and two of its workloads.
const (
	issuerURL   = "https://treaty.test"
	partner     = "acme"
	integration = "acme-billing"
	workload    = "acme-billing-sync"
	sibling     = "acme-billing-report"
	audience    = "https://api.acme.test"
)

var quiet = issuertest.Quiet

// env is the issuer service on a loopback gRPC server, over a real bbolt file, whose neighbours
// are real: a registry, a PDP and a revoker (issuertest), reached over gRPC.
type env struct {
	t      *testing.T
	world  *issuertest.World
	clock  *issuertest.Clock
	iss    *issuer.Issuer
	keys   map[string]ed25519.PrivateKey
	conn   *grpc.ClientConn
	client treatyv1.IssuerServiceClient
}

// newEnv onboards the fixture world and serves an issuer; edit may change its config first.
func newEnv(t *testing.T, edit ...func(*issuer.Config)) *env {
	t.Helper()
	e := &env{t: t, world: issuertest.Start(t, issuertest.Config{}), clock: &issuertest.Clock{}, keys: map[string]ed25519.PrivateKey{}}
	e.world.CreatePartner(partner, time.Now().Add(30*24*time.Hour))
	e.world.CreateIntegration(issuertest.Integration{
		ID: integration, PartnerID: partner, MaxTTL: time.Hour,
		Scopes: []string{"invoices:read", "invoices:write"}, Audiences: []string{audience},
	})
	e.addWorkload(workload, integration)
	e.addWorkload(sibling, integration)

	st := storetest.OpenBolt(t, issuer.Schema)
	relay := outbox.NewRelay(st, e.world.Publisher(), quiet)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(ctx) }()
	// The issuer's signing key is published after the fixture world, and every decision waits
	// for the key's sequence, so the PDP has applied the world before it decides.
	cfg := issuer.Config{
		Store: st, Relay: relay, Directory: e.world.Directory(), Authorizer: e.world.Authorizer(),
		IssuerURL: issuerURL, Now: e.clock.Now, Logger: quiet,
	}
	for _, fn := range edit {
		fn(&cfg)
	}
	iss, err := issuer.New(cfg)
	if err != nil {
		cancel()
		<-relayDone
		t.Fatal(err)
	}
	e.iss = iss
	t.Cleanup(func() { iss.Close(); cancel(); <-relayDone }) // after the server below stops
	e.conn = grpctest.Serve(t, issuersvc.New(issuersvc.Config{Issuer: iss, Logger: quiet}).Register)
	e.client = treatyv1.NewIssuerServiceClient(e.conn)
	return e
}

// addWorkload registers a workload with a fresh Ed25519 key and returns the feed sequence of its
// creation.
func (e *env) addWorkload(id, integ string) uint64 {
	e.t.Helper()
	w := e.world.CreateWorkload(id, integ)
	e.keys[id] = w.Key
	return w.Sequence
}

// onboard registers a partner whose contract ends at contractEnd, with one integration like the
// fixture's and one workload, and returns the workload's id and the feed sequence of its creation.
func (e *env) onboard(id string, contractEnd time.Time) (string, uint64) {
	e.t.Helper()
	e.world.CreatePartner(id, contractEnd)
	e.world.CreateIntegration(issuertest.Integration{
		ID: id + "-integ", PartnerID: id, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
	})
	return id + "-bot", e.addWorkload(id+"-bot", id+"-integ")
}

// assertion signs a valid client assertion for workload id, on the issuer's clock.
func (e *env) assertion(id string) string {
	e.t.Helper()
	a, err := issuer.SignAssertion(id, issuerURL, e.keys[id], e.clock.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// request is a valid token request for workload.
func (e *env) request() *treatyv1.IssueTokenRequest {
	return e.requestAs(workload)
}

// requestAs is a valid token request for workload id.
func (e *env) requestAs(id string) *treatyv1.IssueTokenRequest {
	return &treatyv1.IssueTokenRequest{ClientAssertion: e.assertion(id), Scopes: []string{"invoices:read"}, Audience: audience}
}

func (e *env) issue(req *treatyv1.IssueTokenRequest) *treatyv1.IssueTokenResponse {
	e.t.Helper()
	resp, err := e.client.IssueToken(context.Background(), req)
	if err != nil {
		e.t.Fatalf("IssueToken: %v", err)
	}
	return resp
}
