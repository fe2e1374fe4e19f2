package issuersvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

const (
	issuerURL   = "https://treaty.test"
	partner     = "acme"
	integration = "acme-billing"
	workload    = "acme-billing-sync"
	sibling     = "acme-billing-report"
	audience    = "https://api.acme.test"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// directory is an in-memory issuer.Directory.
type directory struct {
	mu           sync.Mutex
	workloads    map[string]issuer.Workload
	integrations map[string]issuer.Integration
	partners     map[string]issuer.Partner
}

func (d *directory) Workload(_ context.Context, id string) (issuer.Workload, error) {
	return lookup(d, d.workloads, "workload", id)
}

func (d *directory) Integration(_ context.Context, id string) (issuer.Integration, error) {
	return lookup(d, d.integrations, "integration", id)
}

func (d *directory) Partner(_ context.Context, id string) (issuer.Partner, error) {
	return lookup(d, d.partners, "partner", id)
}

func lookup[T any](d *directory, m map[string]T, kind, id string) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := m[id]
	if !ok {
		var zero T
		return zero, fail.NotFoundf("%s %q not found", kind, id)
	}
	return v, nil
}

func (d *directory) editPartner(fn func(p *issuer.Partner)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.partners[partner]
	fn(&p)
	d.partners[partner] = p
}

// authorizer decides from the real revoker's feed state: "syncing" below MinSequence,
// "key_revoked" for revoked keys, configured reasons for configured workloads, else allow.
type authorizer struct {
	log  *revoker.Log
	mu   sync.Mutex
	deny map[string][]string
}

func (a *authorizer) AuthorizeIssuance(_ context.Context, req issuer.IssuanceRequest) (issuer.IssuanceDecision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.log.State()
	deny := func(reasons ...string) (issuer.IssuanceDecision, error) {
		return issuer.IssuanceDecision{Reasons: reasons, Sequence: st.Sequence()}, nil
	}
	if st.Sequence() < req.MinSequence {
		return deny("syncing")
	}
	if reasons, ok := a.deny[req.WorkloadID]; ok {
		return deny(reasons...)
	}
	if k, ok := st.SigningKey(req.Kid); !ok {
		return deny("unknown_key")
	} else if k.Revoked() {
		return deny("key_revoked")
	}
	return issuer.IssuanceDecision{Allow: true, Reasons: []string{"granted"}, DecisionID: "d-1", Sequence: st.Sequence()}, nil
}

// setDeny makes the authorizer deny workload with reasons; no reasons lifts the deny.
func (a *authorizer) setDeny(workload string, reasons ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(reasons) == 0 {
		delete(a.deny, workload)
		return
	}
	a.deny[workload] = reasons
}

// env is the issuer service on a loopback gRPC server, over a real bbolt file, publishing into a
// real revoker.
type env struct {
	t      *testing.T
	dir    *directory
	authz  *authorizer
	rlog   *revoker.Log
	iss    *issuer.Issuer
	keys   map[string]ed25519.PrivateKey
	conn   *grpc.ClientConn
	client treatyv1.IssuerServiceClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rlog, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, issuer.Schema)
	e := &env{t: t, rlog: rlog, authz: &authorizer{log: rlog, deny: map[string][]string{}}, keys: map[string]ed25519.PrivateKey{}}
	e.dir = &directory{
		workloads: map[string]issuer.Workload{},
		integrations: map[string]issuer.Integration{integration: {
			ID: integration, PartnerID: partner, Active: true, MaxTTL: time.Hour,
			AllowedScopes: []string{"invoices:read", "invoices:write"}, Audiences: []string{audience},
		}},
		partners: map[string]issuer.Partner{partner: {ID: partner, Active: true, ContractEnd: time.Now().Add(30 * 24 * time.Hour)}},
	}
	e.addWorkload(workload)
	e.addWorkload(sibling)

	relay := outbox.NewRelay(st, rlog, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(ctx) }()
	e.iss, err = issuer.New(issuer.Config{
		Store: st, Relay: relay, Directory: e.dir, Authorizer: e.authz, IssuerURL: issuerURL, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	issuersvc.New(issuersvc.Config{Issuer: e.iss, Logger: quiet}).Register(srv)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	e.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = treatyv1.NewIssuerServiceClient(e.conn)
	t.Cleanup(func() {
		e.conn.Close()
		srv.Stop()
		<-served
		e.iss.Close()
		cancel()
		<-relayDone
	})
	return e
}

func (e *env) addWorkload(id string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	kid, err := issuer.KeyID(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	e.keys[id] = priv
	e.dir.workloads[id] = issuer.Workload{ID: id, IntegrationID: integration, PartnerID: partner, Active: true,
		Keys: []issuer.WorkloadKey{{KeyID: kid, Algorithm: "EdDSA", Public: pub}}}
}

// assertion signs a valid client assertion for workload id.
func (e *env) assertion(id string) string {
	e.t.Helper()
	a, err := issuer.SignAssertion(id, issuerURL, e.keys[id], time.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// request is a valid token request for workload.
func (e *env) request() *treatyv1.IssueTokenRequest {
	return &treatyv1.IssueTokenRequest{ClientAssertion: e.assertion(workload), Scopes: []string{"invoices:read"}, Audience: audience}
}

func (e *env) issue(req *treatyv1.IssueTokenRequest) *treatyv1.IssueTokenResponse {
	e.t.Helper()
	resp, err := e.client.IssueToken(context.Background(), req)
	if err != nil {
		e.t.Fatalf("IssueToken: %v", err)
	}
	return resp
}
