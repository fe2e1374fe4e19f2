package issuertest

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/services/registrysvc"
)

// Real parts in the states a test cannot otherwise reach: peers that are down, and a decision
// point that has fallen behind its feed.

// DeadAddr returns a loopback address where a peer is down: every connection is closed as soon as
// it opens, so a gRPC call there fails UNAVAILABLE at once. The port stays bound until the test
// ends: a port merely closed again could be taken by a server another parallel test starts, and
// the "dead" peer would answer.
func DeadAddr(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := lis.Accept()
			if err != nil {
				return // closed at cleanup
			}
			conn.Close()
		}
	}()
	tb.Cleanup(func() { lis.Close(); <-done })
	return lis.Addr().String()
}

// UnreachableDirectory returns the real gRPC Directory, pointed at an address where the registry
// is down.
func UnreachableDirectory(tb testing.TB) issuer.Directory {
	tb.Helper()
	return registrysvc.NewDirectory(Dial(tb, DeadAddr(tb)))
}

// UnreachableAuthorizer returns the real gRPC Authorizer, pointed at an address where the PDP is
// down.
func UnreachableAuthorizer(tb testing.TB) issuer.Authorizer {
	tb.Helper()
	return pdpsvc.NewAuthorizer(Dial(tb, DeadAddr(tb)))
}

// SyncingPDP returns an Authorizer for a real PDP that has applied the world's feed up to at least
// applied and then lost its revoker: it answers every decision "syncing". Its staleness bound is
// an hour, so it does not turn stale while a test runs.
//
// The PDP must have applied what the issuer asks about (a decision waits for its MinSequence,
// which is at least the sequence the issuer's signing key was published at), so a PDP that never
// reached a revoker would not do: it first follows the world's revoker, then restarts on the same
// data folder, its state cached, with a revoker address where the revoker is down.
func (w *World) SyncingPDP(applied uint64) issuer.Authorizer {
	w.tb.Helper()
	auth := w.stalledPDP(applied, time.Hour)
	w.awaitReason(auth, applied, "syncing")
	return auth
}

// StalePDP is SyncingPDP with a staleness bound of one second: it returns once the PDP answers
// every decision "stale".
func (w *World) StalePDP(applied uint64) issuer.Authorizer {
	w.tb.Helper()
	auth := w.stalledPDP(applied, time.Second)
	w.awaitReason(auth, applied, "stale")
	return auth
}

func (w *World) stalledPDP(applied uint64, stalenessBound time.Duration) issuer.Authorizer {
	w.tb.Helper()
	dir := w.tb.TempDir()
	follower := serve(w.tb, services.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Services: []string{services.PDP},
		Peers: map[string]string{services.Revoker: w.Addr()}, PeerCredentialFile: w.credFile, Logger: Quiet,
	})
	waitReady(w.tb, follower)
	// A decision at applied returns once the follower has applied (and cached) that sequence.
	if _, err := pdpsvc.NewAuthorizer(DialAdmin(w.tb, follower.Addr(), dir)).AuthorizeIssuance(context.Background(), probe(applied)); err != nil {
		w.tb.Fatalf("the follower did not apply sequence %d: %v", applied, err)
	}
	follower.Shutdown()

	stalled := serve(w.tb, services.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Services: []string{services.PDP},
		Peers:          map[string]string{services.Revoker: DeadAddr(w.tb)},
		StalenessBound: stalenessBound, Heartbeat: min(time.Second, stalenessBound/2), Logger: Quiet,
	})
	return pdpsvc.NewAuthorizer(DialAdmin(w.tb, stalled.Addr(), dir))
}

// awaitReason waits until auth answers a decision at applied with reason.
func (w *World) awaitReason(auth issuer.Authorizer, applied uint64, reason string) {
	w.tb.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		dec, err := auth.AuthorizeIssuance(context.Background(), probe(applied))
		if err == nil && slices.Equal(dec.Reasons, []string{reason}) {
			return
		}
		if time.Now().After(deadline) {
			w.tb.Fatalf("the stalled PDP answers %+v, %v after %s; want %q", dec, err, readyWait, reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe is a well-formed issuance request at min sequence applied.
func probe(applied uint64) issuer.IssuanceRequest {
	return issuer.IssuanceRequest{WorkloadID: "probe", Scopes: []string{"probe"}, Audience: "https://probe.test", Kid: "probe", MinSequence: applied}
}
