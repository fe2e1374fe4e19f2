package services

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// benchPartners is the fixture size of BenchmarkCheckVsHealth: enough distinct tokens that the
// token cache is not one hot line, small enough to seed in a few seconds.
const benchPartners = 1000

// BenchmarkCheckVsHealth runs the real server (all four services, the real PDP and decision log,
// the interceptor chain) on loopback and calls the standard health Check and DecisionService.Check
// side by side, from 1 and 32 callers, with the decision log keeping every allow and 1% of them.
// The in-process client shares the CPU with the server, so the absolute numbers are not the
// load tool's; the difference between the two calls, in ns/op, allocs/op and a -cpuprofile or
// -memprofile, is what the decision adds on the server.
func BenchmarkCheckVsHealth(b *testing.B) {
	dir := b.TempDir()
	tokens := seedBench(b, dir, benchPartners)
	for _, sample := range []float64{1, 0.01} {
		b.Run(fmt.Sprintf("allow-sample=%v", sample), func(b *testing.B) {
			data := b.TempDir()
			copyFile(b, filepath.Join(dir, "revoker.db"), filepath.Join(data, "revoker.db"))
			srv, err := Start(Config{DataDir: data, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
				DecisionLog: DecisionLogConfig{AllowSample: sample}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			conn := dialAdmin(b, srv, data)
			health := healthpb.NewHealthClient(conn)
			decisions := treatyv1.NewDecisionServiceClient(conn)
			ctx := context.Background()
			reqs := make([]*treatyv1.CheckRequest, len(tokens))
			deadline := time.Now().Add(30 * time.Second)
			for i, tok := range tokens {
				reqs[i] = &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: pdptest.FixtureAudience}
				for { // the first calls wait for the PDP to catch up with the feed
					resp, err := decisions.Check(ctx, reqs[i])
					if err != nil {
						b.Fatal(err)
					}
					if resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("the fixture's token was denied: %v", resp.GetReasons())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			hreq := &healthpb.HealthCheckRequest{}
			calls := []struct {
				name string
				call func(i int) error
			}{
				{"health", func(int) error { _, err := health.Check(ctx, hreq); return err }},
				{"check", func(i int) error {
					resp, err := decisions.Check(ctx, reqs[i%len(reqs)])
					if err == nil && resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
						err = fmt.Errorf("denied: %v", resp.GetReasons())
					}
					return err
				}},
			}
			for _, c := range []int{1, 32} {
				for _, call := range calls {
					b.Run(fmt.Sprintf("c=%d/%s", c, call.name), func(b *testing.B) {
						b.ReportAllocs()
						if c == 1 {
							for i := 0; b.Loop(); i++ {
								if err := call.call(i); err != nil {
									b.Fatal(err)
								}
							}
							return
						}
						b.SetParallelism(max(1, c/runtime.GOMAXPROCS(0))) // RunParallel runs p × GOMAXPROCS callers
						b.RunParallel(func(pb *testing.PB) {
							i := 0
							for pb.Next() {
								if err := call.call(i); err != nil {
									b.Error(err)
									return
								}
								i++
							}
						})
					})
				}
			}
		})
	}
}

// seedBench publishes a fixture of n partners into dir/revoker.db, the file the server's revoker
// opens, and mints one EdDSA token per workload.
func seedBench(b *testing.B, dir string, n int) []string {
	b.Helper()
	st, err := store.OpenBolt(filepath.Join(dir, "revoker.db"), revoker.Schema)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	log, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	f := pdptest.NewFixture(b, log, n)
	var tokens []string
	for p := range n {
		for i := range pdptest.IntegrationsPerPartner {
			tokens = append(tokens, f.Token(b, jose.EdDSA, p, i))
		}
	}
	return tokens
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		b.Fatal(err)
	}
}

// nullDecisions answers every Check with the same allow, deciding nothing: the floor the wire
// and the codec set for a Check of this shape.
type nullDecisions struct {
	treatyv1.UnimplementedDecisionServiceServer
	resp *treatyv1.CheckResponse
}

func (n *nullDecisions) Check(context.Context, *treatyv1.CheckRequest) (*treatyv1.CheckResponse, error) {
	return n.resp, nil
}

// BenchmarkWireFloor is BenchmarkCheckVsHealth's counterpart with a DecisionService that decides
// nothing, on a server with the same interceptor chain: what a Check request and response of
// the real size cost beside the health call before any decision, token cache or decision log.
// Compare its check/health ratio with BenchmarkCheckVsHealth's from the same run.
func BenchmarkWireFloor(b *testing.B) {
	acc, err := access.Open(access.Config{Store: storetest.OpenBolt(b, access.Schema), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer acc.Close()
	tok, _, err := acc.Bootstrap(filepath.Join(b.TempDir(), AdminCredentialFile))
	if err != nil {
		b.Fatal(err)
	}
	a := authn.New(authn.Config{Access: acc, Logger: slog.New(slog.DiscardHandler)})
	srv := newGRPCServer(slog.New(slog.DiscardHandler), nil, guards(a, Config{}.withDefaults().RateLimits))
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(srv, healthSrv)
	treatyv1.RegisterDecisionServiceServer(srv, &nullDecisions{resp: &treatyv1.CheckResponse{
		Decision: treatyv1.Decision_DECISION_ALLOW, Reasons: []string{"granted"},
		DecisionId: "0123456789abcdef0123456789abcdef", Sequence: 70001, Epoch: "0123456789abcdef0123456789abcdef",
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(authn.Token(tok)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	decisions := treatyv1.NewDecisionServiceClient(conn)
	ctx := context.Background()
	// A token of the real size (an EdDSA access token of the fixture is about 530 bytes).
	req := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: strings.Repeat("x", 530)}, Action: "read", Resource: pdptest.FixtureAudience}
	hreq := &healthpb.HealthCheckRequest{}
	calls := []struct {
		name string
		call func() error
	}{
		{"health", func() error { _, err := health.Check(ctx, hreq); return err }},
		{"null-check", func() error { _, err := decisions.Check(ctx, req); return err }},
	}
	for _, c := range []int{1, 32} {
		for _, call := range calls {
			b.Run(fmt.Sprintf("c=%d/%s", c, call.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, c/runtime.GOMAXPROCS(0)))
				if c == 1 {
					for b.Loop() {
						if err := call.call(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call.call(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
