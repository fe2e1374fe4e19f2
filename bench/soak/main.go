// Command soak runs checks, issuance and revocations together against one Treaty deployment for a
// bounded time, at modest rates, and reports what went wrong (which must be nothing), each
// operation's latency percentiles, and memory at the start and the end. It talks to loopback
// only: by default it starts every service in this process on a temporary data folder
// (services.Start), or it drives a running server given with -server.
//
//	go run ./bench/soak -duration 3m
//	go run ./bench/soak -server 127.0.0.1:7433 -server-pid $(pgrep -n treaty) -duration 10m
//
// Every issued token is checked (allow expected); every revocation revokes a token issued for the
// purpose and then checks it at the revocation's sequence (deny, reason revoked, expected). A
// wrong decision counts as an error. It exits 1 if any call failed.
//
// It is a measuring tool, not part of the treaty binary, and not run in CI (make soak).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/treaty-dev/treaty/bench/internal/dial"
	"github.com/treaty-dev/treaty/bench/internal/workload"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services"
)

// audience is the audience of the soak's integration and tokens.
const audience = "https://api.soak.treaty.test"

func main() {
	if err := soak(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type options struct {
	duration                      time.Duration
	server, data                  string
	serverPID                     int
	checkRate, issueRate, revRate float64
	workloads                     int
	progress                      time.Duration
	heapProfile                   string
}

func soak() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "how long to run the mixed load")
	flag.StringVar(&o.server, "server", "", "address of a running treaty serve (loopback only); default: start every service in this process")
	flag.StringVar(&o.data, "data", "", "data folder of the in-process services (default a temporary folder, removed at the end)")
	flag.IntVar(&o.serverPID, "server-pid", 0, "with -server, the server's process id, to report its resident memory")
	flag.Float64Var(&o.checkRate, "check-rate", 200, "checks a second")
	flag.Float64Var(&o.issueRate, "issue-rate", 20, "token issuances a second")
	flag.Float64Var(&o.revRate, "revoke-rate", 5, "revocations a second (each also issues and checks its token)")
	flag.IntVar(&o.workloads, "workloads", 16, "workloads to onboard")
	flag.DurationVar(&o.progress, "progress", 30*time.Second, "how often to print progress to stderr")
	flag.StringVar(&o.heapProfile, "heap-profile", "", "in-process only: write heap profiles PREFIX.start.pprof (after the warm-up) and PREFIX.end.pprof, to compare with go tool pprof -base")
	flag.Parse()

	addr := o.server
	memPID := o.serverPID
	cred := "" // with -server, $TREATY_CREDENTIAL_FILE
	if addr == "" {
		srv, data, stop, err := startInProcess(o.data)
		if err != nil {
			return err
		}
		defer stop()
		addr, memPID, cred = srv.Addr(), os.Getpid(), filepath.Join(data, services.AdminCredentialFile)
	} else if err := loopback(addr); err != nil {
		return err
	}
	conn, err := dial.Server(addr, cred)
	if err != nil {
		return err
	}
	defer conn.Close()
	return drive(conn, addr, memPID, o)
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-server %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-server %q is not a loopback address: the soak test only runs on this machine", addr)
	}
	return nil
}

// startInProcess starts every service on a loopback port and waits until the PDP is ready; it
// returns the server and its data folder.
func startInProcess(data string) (*services.Server, string, func(), error) {
	remove := false
	if data == "" {
		dir, err := os.MkdirTemp("", "treaty-soak")
		if err != nil {
			return nil, "", nil, err
		}
		data, remove = dir, true
	}
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	srv, err := services.Start(services.Config{
		DataDir: data, Listen: "127.0.0.1:0",
		DecisionLog: services.DecisionLogConfig{AllowSample: 1}, // as treaty serve: every allow kept
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return nil, "", nil, err
	}
	stop := func() {
		level.Set(slog.LevelError) // the peers' warnings about the shutdown itself are expected
		srv.Shutdown()
		if remove {
			os.RemoveAll(data)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); !srv.Ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			return nil, "", nil, fmt.Errorf("the in-process services were not ready after 30s")
		}
	}
	return srv, data, stop, nil
}

// drive onboards workloads, runs the three loads together for o.duration and prints the report.
func drive(conn *grpc.ClientConn, addr string, memPID int, o options) error {
	ctx := context.Background()
	iss := treatyv1.NewIssuerServiceClient(conn)
	desc, err := iss.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
	if err != nil {
		return fmt.Errorf("GetIssuer: %w", err)
	}
	keys, err := workload.Onboard(ctx, treatyv1.NewRegistryServiceClient(conn), "soak-"+workload.RandomHex(3), o.workloads, audience)
	if err != nil {
		return fmt.Errorf("onboard: %w", err)
	}
	l := &load{
		iss: iss, pdp: treatyv1.NewDecisionServiceClient(conn), rev: treatyv1.NewRevocationServiceClient(conn),
		issuerURL: desc.GetIssuer(), keys: keys, stats: newStats(),
	}
	// A first token for the checks, before they start.
	if err := l.issueOne(true); err != nil {
		return fmt.Errorf("first issuance: %w", err)
	}
	fmt.Printf("soak: server %s, issuer %s, %d workloads, %v at %.0f checks/s, %.0f issuances/s, %.0f revocations/s\n",
		addr, desc.GetIssuer(), len(keys), o.duration, o.checkRate, o.issueRate, o.revRate)

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	paced(runCtx, &wg, o.checkRate, 8, l.checkOne)
	paced(runCtx, &wg, o.issueRate, 4, func() error { return l.issueOne(true) })
	paced(runCtx, &wg, o.revRate, 2, l.revokeOne)
	began := time.Now()
	tick := time.NewTicker(o.progress)
	defer tick.Stop()
	// Memory at the start is sampled once the load has warmed up (caches filled, pools grown),
	// so that the growth reported is what the soak itself adds.
	warmup := min(o.duration/10, 10*time.Second)
	warm := time.After(warmup)
	var start memory
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-warm:
			start = sampleMemory(memPID)
			writeHeapProfile(o.heapProfile, "start")
		case <-tick.C:
			m := sampleMemory(memPID)
			fmt.Fprintf(os.Stderr, "soak: %v: %s; heap %s, RSS %s\n", time.Since(began).Round(time.Second), l.stats.brief(), mib(m.heap), mib(m.rss))
		}
	}
	wg.Wait()
	elapsed := time.Since(began)
	end := sampleMemory(memPID)
	writeHeapProfile(o.heapProfile, "end")
	fmt.Printf("memory sampled after a %v warm-up and at the end, each after a garbage collection\n", warmup)
	failed := l.stats.report(os.Stdout, elapsed, start, end)
	if failed > 0 {
		return fmt.Errorf("%d calls failed", failed)
	}
	return nil
}

// paced runs fn rate times a second in total, spread over workers goroutines, until ctx ends.
func paced(ctx context.Context, wg *sync.WaitGroup, rate float64, workers int, fn func() error) {
	if rate <= 0 {
		return
	}
	workers = max(1, min(workers, int(rate)))
	every := time.Duration(float64(workers) / rate * float64(time.Second))
	for w := range workers {
		wg.Go(func() {
			// Stagger the workers over one interval, so their calls do not arrive together.
			select {
			case <-time.After(every * time.Duration(w) / time.Duration(workers)):
			case <-ctx.Done():
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				fn() // errors are counted by the stats
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
}

// load holds the clients and the tokens in play.
type load struct {
	iss       treatyv1.IssuerServiceClient
	pdp       treatyv1.DecisionServiceClient
	rev       treatyv1.RevocationServiceClient
	issuerURL string
	keys      []workload.Key
	stats     *stats

	mu     sync.Mutex
	next   int      // the next workload to issue for
	tokens []string // recent live tokens, for the checks
}

// poolSize bounds how many recent tokens the checks choose from.
const poolSize = 256

// call runs an RPC with a deadline and records its latency and outcome under op.
func (l *load) call(op string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := time.Now()
	err := fn(ctx)
	l.stats.record(op, time.Since(t), err)
	return err
}

// issueOne issues a token for the next workload, adding it to the checks' pool if pool is set.
func (l *load) issueOne(pool bool) error {
	_, err := l.issue(pool)
	return err
}

// issue is issueOne returning the issued token.
func (l *load) issue(pool bool) (*treatyv1.IssueTokenResponse, error) {
	l.mu.Lock()
	k := l.keys[l.next%len(l.keys)]
	l.next++
	l.mu.Unlock()
	assertion, err := workload.Presign([]workload.Key{k}, l.issuerURL, 1)
	if err != nil {
		return nil, err
	}
	var resp *treatyv1.IssueTokenResponse
	err = l.call("issue", func(ctx context.Context) error {
		var err error
		resp, err = l.iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{ClientAssertion: assertion[0], Scopes: []string{"read"},
			Audience: audience, Ttl: durationpb.New(5 * time.Minute)})
		return err
	})
	if err != nil {
		return nil, err
	}
	if pool {
		l.mu.Lock()
		if len(l.tokens) < poolSize {
			l.tokens = append(l.tokens, resp.GetAccessToken())
		} else {
			l.tokens[rand.IntN(poolSize)] = resp.GetAccessToken()
		}
		l.mu.Unlock()
	}
	return resp, nil
}

// checkOne checks a recent token, which must be allowed.
func (l *load) checkOne() error {
	l.mu.Lock()
	tok := l.tokens[rand.IntN(len(l.tokens))]
	l.mu.Unlock()
	return l.call("check", func(ctx context.Context) error {
		resp, err := l.pdp.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: audience})
		if err == nil && resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
			err = fmt.Errorf("a live token was denied: %v", resp.GetReasons())
		}
		return err
	})
}

// revokeOne issues a token of its own, revokes it, and checks it at the revocation's sequence,
// which must deny it as revoked.
func (l *load) revokeOne() error {
	resp, err := l.issue(false)
	if err != nil {
		return err
	}
	var seq uint64
	err = l.call("revoke", func(ctx context.Context) error {
		r, err := l.rev.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
			TargetId: resp.GetCredential().GetId(), Reason: "soak", Actor: "soak"})
		seq = r.GetSequence()
		return err
	})
	if err != nil {
		return err
	}
	return l.call("check-revoked", func(ctx context.Context) error {
		d, err := l.pdp.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: resp.GetAccessToken()},
			Action: "read", Resource: audience, MinSequence: seq})
		if err == nil && (d.GetDecision() != treatyv1.Decision_DECISION_DENY || !slices.Contains(d.GetReasons(), "revoked")) {
			err = fmt.Errorf("a revoked token was not denied as revoked: %v %v", d.GetDecision(), d.GetReasons())
		}
		return err
	})
}

// writeHeapProfile writes the heap profile to prefix.name.pprof, if prefix is set.
func writeHeapProfile(prefix, name string) {
	if prefix == "" {
		return
	}
	f, err := os.Create(prefix + "." + name + ".pprof")
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: heap profile:", err)
	}
}
