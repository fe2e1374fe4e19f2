package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store"
)

// fatalTB lets the benchmark use pdptest's fixture builders outside a test: any failure ends the
// process. Only the methods pdptest calls are implemented.
type fatalTB struct{ testing.TB }

func (fatalTB) Helper()                        {}
func (fatalTB) Fatal(args ...any)              { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (fatalTB) Fatalf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...); os.Exit(1) }
func (fatalTB) Errorf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...); os.Exit(1) }

// revokeToDeny runs a PDP that follows a Treaty revoker of the given kind (treaty, etcd or
// etcd-replica) over gRPC (dialled with revokersvc.FeedDialOptions, as treaty serve should), and
// measures, for r credentials one at a
// time: the time from Revoke returning until a Check without min_sequence denies the revoked
// token; and whether a Check with min_sequence set to the revocation's sequence, made right after
// Revoke returns, denies it. With etcd-replica, the revocations go to replica A and the PDP
// follows replica B, so each crosses etcd's watch before the PDP can deny.
func revokeToDeny(r int, kind string) error {
	if kind == "baseline" {
		return fmt.Errorf("-deny-server baseline: choose treaty, etcd or etcd-replica")
	}
	srv, err := startServer(kind)
	if err != nil {
		return err
	}
	defer srv.stop()
	var tb fatalTB
	key := pdptest.NewKey(tb, "k1")
	pdptest.Publish(tb, srv.log,
		pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, []string{"read"}, []string{"api"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE),
		key.Published(tb),
	)

	conn, err := grpc.NewClient(srv.addr, append(revokersvc.FeedDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := store.OpenBolt(filepath.Join(srv.dir, "pdp.db"), pdp.Schema)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := pdp.New(pdp.Config{Store: st, Source: revokersvc.NewSource(conn), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := p.WaitReady(wctx); err != nil {
		return fmt.Errorf("pdp not ready: %w", err)
	}

	rconn := conn // Revoke on the PDP's connection, unless it goes to another replica
	if srv.revokeAddr != srv.addr {
		if rconn, err = grpc.NewClient(srv.revokeAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		defer rconn.Close()
	}
	client := treatyv1.NewRevocationServiceClient(rconn)
	check := func(tok string, minSeq uint64) (pdp.Decision, error) {
		return p.Check(ctx, pdp.CheckRequest{Token: tok, Action: "read", Resource: "api", MinSequence: minSeq})
	}
	revoke := func(jti string) (uint64, time.Time, error) {
		resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jti, Reason: "revoke-to-deny benchmark"})
		return resp.GetSequence(), time.Now(), err
	}
	var toDeny []time.Duration
	minSeqAllows := 0
	for i := range r {
		// Without min_sequence: poll Check (the decision path, as a gateway would ask) until deny.
		c := pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", srv.log.Epoch(), srv.log.Head())
		tok := key.Mint(tb, c)
		if d, err := check(tok, srv.log.Head()); err != nil || !d.Allow {
			return fmt.Errorf("fresh token not allowed: %v %v", d.Reasons, err)
		}
		_, returned, err := revoke(c.ID)
		if err != nil {
			return err
		}
		for {
			d, err := check(tok, 0)
			if err != nil {
				return err
			}
			if !d.Allow {
				toDeny = append(toDeny, time.Since(returned))
				break
			}
			if time.Since(returned) > 10*time.Second {
				return fmt.Errorf("revocation %d never denied", i)
			}
			// Poll, without spinning a core away from the follower on a small machine.
			time.Sleep(50 * time.Microsecond)
		}
		// With min_sequence: the first Check after Revoke must deny.
		c = pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", srv.log.Epoch(), srv.log.Head())
		tok = key.Mint(tb, c)
		if d, err := check(tok, srv.log.Head()); err != nil || !d.Allow {
			return fmt.Errorf("fresh token not allowed: %v %v", d.Reasons, err)
		}
		seq, _, err := revoke(c.ID)
		if err != nil {
			return err
		}
		if d, err := check(tok, seq); err != nil {
			return err
		} else if d.Allow {
			minSeqAllows++
		}
		time.Sleep(time.Duration(1+i%5) * time.Millisecond)
	}
	q := quantiles(toDeny)
	fmt.Printf("revoke-to-deny, PDP following %s over gRPC, %d revocations: p50 %s  p90 %s  p99 %s  max %s (target p99 <= 10ms)\n",
		denyLabel[kind], r, ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]))
	fmt.Printf("first Check with min_sequence after Revoke: %d of %d denied (want all)\n", r-minSeqAllows, r)
	if minSeqAllows > 0 {
		return fmt.Errorf("%d checks with min_sequence allowed a revoked token", minSeqAllows)
	}
	return nil
}

// denyLabel says what the PDP follows, per -deny-server.
var denyLabel = map[string]string{
	"treaty":       "treaty (bbolt)",
	"etcd":         "etcd (one replica)",
	"etcd-replica": "etcd-replica (Revoke to A, PDP on B)",
}
