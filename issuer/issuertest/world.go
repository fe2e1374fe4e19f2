// Package issuertest runs the issuer's real neighbours for tests: a registry, a decision point and
// a revoker served by services.Start on a loopback port, with helpers to onboard partners,
// integrations and workloads through the RegistryService and to pull the kill switch through the
// RevocationService. The issuer's domain tests and its gRPC adapter's tests build their issuer on
// top of it, so that issuance goes through the same parts as in production.
//
// Only tests may import it. Package services imports the issuer and its adapter, so services (and
// anything it imports) must never import issuertest, or the import graph would cycle.
package issuertest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/services"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// Actor is the actor every write of this package records in the audit trail and the feed.
const Actor = "issuertest"

// readyWait bounds how long a test waits for a server to report ready. It is generous: a PDP
// catches up with a near-empty feed in milliseconds, but a loaded CI machine running -race can be
// slow.
const readyWait = 30 * time.Second

// Quiet is a logger that discards everything, for servers and issuers under test.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Config configures a World. The zero value is a registry, a PDP and a revoker on a free loopback
// port.
type Config struct {
	// IssuerPeer, if set, is the address of an IssuerService the revoker asks for the expiry of a
	// revoked credential, as in a deployment with an issuer. The address need not be served yet
	// when Start returns: the revoker only dials it when a credential is revoked.
	IssuerPeer string
}

// World is a running registry, PDP and revoker in one services.Server, the issuer's real
// neighbours, with clients to drive them. Every write helper fails the test on error and returns
// the feed sequence the write landed at, so a test can pass it on as a MinSequence and read its
// own writes in the PDP.
type World struct {
	tb  testing.TB
	srv *services.Server
	// credFile holds the token of the world's clients (see worldIdentity).
	credFile string
	conn     *grpc.ClientConn

	// Registry, Revocation and Decisions are clients of the world's services.
	Registry   treatyv1.RegistryServiceClient
	Revocation treatyv1.RevocationServiceClient
	Decisions  treatyv1.DecisionServiceClient
}

// Start starts a registry, a PDP and a revoker in a temp data folder, waits until the PDP has caught
// up with the feed, and stops everything when the test ends (after cleanups registered later,
// such as an issuer's, have run).
func Start(tb testing.TB, cfg Config) *World {
	tb.Helper()
	scfg := services.Config{
		DataDir: tb.TempDir(), Listen: "127.0.0.1:0",
		Services: []string{services.Registry, services.PDP, services.Revoker}, Logger: Quiet,
	}
	if cfg.IssuerPeer != "" {
		scfg.Peers = map[string]string{services.Issuer: cfg.IssuerPeer}
	}
	srv := serve(tb, scfg)
	waitReady(tb, srv)
	cred := worldIdentity(tb, srv.Addr(), scfg.DataDir)
	conn := dialToken(tb, srv.Addr(), cred)
	return &World{
		tb: tb, srv: srv, conn: conn, credFile: cred,
		Registry:   treatyv1.NewRegistryServiceClient(conn),
		Revocation: treatyv1.NewRevocationServiceClient(conn),
		Decisions:  treatyv1.NewDecisionServiceClient(conn),
	}
}

// serve starts a server and shuts it down at cleanup.
func serve(tb testing.TB, cfg services.Config) *services.Server {
	tb.Helper()
	srv, err := services.Start(cfg)
	if err != nil {
		tb.Fatalf("start %v: %v", cfg.Services, err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// waitReady waits until srv reports ready: for a PDP, caught up with the feed.
func waitReady(tb testing.TB, srv *services.Server) {
	tb.Helper()
	deadline := time.Now().Add(readyWait)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			tb.Fatalf("the server on %s is not ready after %s", srv.Addr(), readyWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dial returns a client connection to addr, closed when the test ends. Dialing is lazy: nothing
// needs to listen at addr yet.
func Dial(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// DialAdmin is Dial authenticating as the admin identity the server's first start created in
// dataDir.
func DialAdmin(tb testing.TB, addr, dataDir string) *grpc.ClientConn {
	tb.Helper()
	return dialToken(tb, addr, filepath.Join(dataDir, services.AdminCredentialFile))
}

// dialToken is Dial sending the token in credFile.
func dialToken(tb testing.TB, addr, credFile string) *grpc.ClientConn {
	tb.Helper()
	creds, err := authn.TokenFile(credFile)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// worldIdentity creates the identity the world's clients use, with the roles admin (everything)
// and service (what an issuer or a PDP in another process needs, never rate-limited), and returns
// the file its token is in.
func worldIdentity(tb testing.TB, addr, dataDir string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	resp, err := treatyv1.NewAccessServiceClient(DialAdmin(tb, addr, dataDir)).CreateIdentity(ctx, &treatyv1.CreateIdentityRequest{
		Name: "test-world", Roles: []string{"admin", "service"}, IssueToken: true, Reason: "the test world's clients",
	})
	if err != nil {
		tb.Fatalf("create the test world's identity: %v", err)
	}
	path := filepath.Join(dataDir, "world.credential")
	if err := os.WriteFile(path, []byte(resp.GetToken()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// CredentialFile is the file holding the token of the world's clients: a PDP or an issuer in
// another process gives it as its PeerCredentialFile.
func (w *World) CredentialFile() string { return w.credFile }

// Addr returns the address the world's services listen on.
func (w *World) Addr() string { return w.srv.Addr() }

// Conn returns the world's client connection.
func (w *World) Conn() *grpc.ClientConn { return w.conn }

// Directory returns the issuer's view of the world's registry, over gRPC.
func (w *World) Directory() issuer.Directory { return registrysvc.NewDirectory(w.conn) }

// Authorizer returns the issuer's client of the world's PDP, over gRPC.
func (w *World) Authorizer() issuer.Authorizer { return pdpsvc.NewAuthorizer(w.conn) }

// Publisher returns a publisher into the world's revoker, over gRPC, for an issuer's outbox relay.
func (w *World) Publisher() outbox.Publisher { return revokersvc.NewPublisher(w.conn) }

// State returns the revoker's enforcement state at its head.
func (w *World) State() *feed.State {
	w.tb.Helper()
	resp, err := w.Revocation.Snapshot(context.Background(), &treatyv1.SnapshotRequest{})
	if err != nil {
		w.tb.Fatalf("Snapshot: %v", err)
	}
	return feed.FromProto(resp.GetState())
}

// Head returns the revoker's head sequence.
func (w *World) Head() uint64 {
	w.tb.Helper()
	return w.State().Sequence()
}

// Events returns every event in the feed, up to the head at the time of the call.
func (w *World) Events() []*treatyv1.Event {
	w.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	stream, err := w.Revocation.Subscribe(ctx, &treatyv1.SubscribeRequest{})
	if err != nil {
		w.tb.Fatalf("Subscribe: %v", err)
	}
	// The first message of every stream is a heartbeat announcing the head.
	first, err := stream.Recv()
	if err != nil || first.GetHeartbeat() == nil {
		w.tb.Fatalf("feed subscription opened with %v, %v; want a heartbeat", first, err)
	}
	head := first.GetHeartbeat().GetHeadSequence()
	var events []*treatyv1.Event
	for head > 0 && (len(events) == 0 || events[len(events)-1].GetSequence() < head) {
		msg, err := stream.Recv()
		if err != nil {
			w.tb.Fatalf("feed subscription ended after %d events, before the head %d: %v", len(events), head, err)
		}
		if ev := msg.GetEvent(); ev != nil {
			events = append(events, ev)
		}
	}
	return events
}

// Check asks the world's PDP whether token may perform action on resource, at or after feed
// sequence minSeq, and returns the decision's reason ("granted" for an allow).
func (w *World) Check(token, action, resource string, minSeq uint64) string {
	w.tb.Helper()
	return w.CheckWithProof(token, action, resource, minSeq, nil)
}

// CheckWithProof is Check for a sender-constrained token: proof is the evidence of possession the
// enforcement point saw (a DPoP proof, a client certificate's thumbprint).
func (w *World) CheckWithProof(token, action, resource string, minSeq uint64, proof *treatyv1.Proof) string {
	w.tb.Helper()
	resp, err := w.Decisions.Check(context.Background(), &treatyv1.CheckRequest{
		Subject: &treatyv1.CheckRequest_Token{Token: token}, Action: action, Resource: resource, MinSequence: minSeq,
		Proof: proof,
	})
	if err != nil {
		w.tb.Fatalf("Check: %v", err)
	}
	if len(resp.GetReasons()) != 1 {
		w.tb.Fatalf("Check answered %v, want one reason", resp)
	}
	if allow := resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW; allow != (resp.GetReasons()[0] == "granted") {
		w.tb.Fatalf("Check answered %v: the decision and its reason disagree", resp)
	}
	return resp.GetReasons()[0]
}
