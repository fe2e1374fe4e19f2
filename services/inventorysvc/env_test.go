package inventorysvc_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

const audience = "https://api.platform.test"

// env is a deployment as treaty serve runs it, in parts: a registry, a PDP and a revoker in one
// server (the world), whose registry reaches a real issuer served on its own loopback port for
// the offboarding's inventory, and whose revoker asks that issuer for credential expiries. The
// issuer follows the world's feed, so its inventory learns revocations.
type env struct {
	t      testing.TB
	world  *issuertest.World
	iss    *issuer.Issuer
	client treatyv1.InventoryServiceClient
	keys   map[string]ed25519.PrivateKey
}

func newEnv(t testing.TB) *env {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := issuertest.Start(t, issuertest.Config{IssuerPeer: lis.Addr().String()})
	st := storetest.OpenBolt(t, issuer.Schema)
	relay := outbox.NewRelay(st, w.Publisher(), issuertest.Quiet)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(ctx) }()
	iss, err := issuer.New(issuer.Config{
		Store: st, Relay: relay, Directory: w.Directory(), Authorizer: w.Authorizer(),
		Feed: revokersvc.NewSource(w.Conn()), IssuerURL: issuertest.MinterURL, Logger: issuertest.Quiet,
	})
	if err != nil {
		cancel()
		<-relayDone
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	issuersvc.New(issuersvc.Config{Issuer: iss, Logger: issuertest.Quiet}).Register(srv)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served; iss.Close(); cancel(); <-relayDone })
	return &env{t: t, world: w, iss: iss, client: treatyv1.NewInventoryServiceClient(w.Conn()), keys: map[string]ed25519.PrivateKey{}}
}

// onboard registers an active partner with one integration and n workloads, and returns the
// workloads.
func (e *env) onboard(partner string, n int) []issuertest.Workload {
	e.t.Helper()
	e.world.CreatePartner(partner, time.Now().Add(90*24*time.Hour))
	integ := partner + "-api"
	e.world.CreateIntegration(issuertest.Integration{
		ID: integ, PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"orders:read"}, Audiences: []string{audience},
	})
	wls := make([]issuertest.Workload, n)
	for k := range wls {
		wls[k] = e.world.CreateWorkload(fmt.Sprintf("%s-bot-%d", partner, k), integ)
	}
	return wls
}

// mint issues n credentials through the real issuer, spread over wls, with 32 issuances in
// flight (the inventory's group commit puts many into each fsync).
func (e *env) mint(wls []issuertest.Workload, n int) {
	e.t.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 32)
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				wl := wls[k%len(wls)]
				a, err := issuer.SignAssertion(wl.ID, issuertest.MinterURL, wl.Key, time.Now(), time.Minute)
				if err == nil {
					_, err = e.iss.Issue(context.Background(), issuer.Request{
						Assertion: a, Scopes: []string{"orders:read"}, Audience: audience, TTL: 30 * time.Minute, MinSequence: wl.Sequence,
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		e.t.Fatalf("issue: %v", err)
	}
}

// live counts a partner's live credentials in the issuer's inventory.
func (e *env) live(partner string) uint64 {
	e.t.Helper()
	n, _, err := e.iss.CountLive(issuer.LiveQuery{PartnerID: partner})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// offboard runs RunOffboarding to its end and returns the progress reports and the record.
func (e *env) offboard(ctx context.Context, partner string) ([]*treatyv1.OffboardingProgress, *treatyv1.Offboarding, error) {
	stream, err := e.client.RunOffboarding(ctx, &treatyv1.RunOffboardingRequest{
		PartnerId: partner, Reason: "contract terminated", Actor: "alice@example.com",
	})
	if err != nil {
		return nil, nil, err
	}
	var progress []*treatyv1.OffboardingProgress
	for {
		m, err := stream.Recv()
		if err != nil {
			return progress, nil, err
		}
		if p := m.GetProgress(); p != nil {
			progress = append(progress, p)
		}
		if o := m.GetOffboarding(); o != nil {
			return progress, o, nil
		}
	}
}
