package issuertest

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/store/storetest"
)

// MinterURL is the issuer identifier of a Minter.
const MinterURL = "https://treaty.test"

// Minter is a real issuer over a temp bbolt file, in the world: it looks workloads up in the
// world's registry, asks its PDP, and publishes its signing key into its revoker. Tests that need
// real credentials in a real inventory (a revocation's dry run) mint them with it.
type Minter struct {
	// Issuer is the issuer; its inventory holds every credential Mint returns.
	Issuer *issuer.Issuer
	tb     testing.TB
}

// StartIssuer starts a Minter in the world, stopped when the test ends.
func (w *World) StartIssuer() *Minter {
	w.tb.Helper()
	st := storetest.OpenBolt(w.tb, issuer.Schema)
	relay := outbox.NewRelay(st, w.Publisher(), Quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(ctx) }()
	iss, err := issuer.New(issuer.Config{
		Store: st, Relay: relay, Directory: w.Directory(), Authorizer: w.Authorizer(), IssuerURL: MinterURL, Logger: Quiet,
	})
	if err != nil {
		cancel()
		<-done
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { iss.Close(); cancel(); <-done })
	return &Minter{Issuer: iss, tb: w.tb}
}

// Mint issues a credential to wl for scope and audience, which its integration must allow, and
// returns its inventory record.
func (m *Minter) Mint(wl Workload, scope, audience string, ttl time.Duration) issuer.Credential {
	m.tb.Helper()
	a, err := issuer.SignAssertion(wl.ID, MinterURL, wl.Key, time.Now(), time.Minute)
	if err != nil {
		m.tb.Fatal(err)
	}
	out, err := m.Issuer.Issue(context.Background(), issuer.Request{
		Assertion: a, Scopes: []string{scope}, Audience: audience, TTL: ttl, MinSequence: wl.Sequence,
	})
	if err != nil {
		m.tb.Fatalf("mint a credential for %s: %v", wl.ID, err)
	}
	return out.Credential
}
