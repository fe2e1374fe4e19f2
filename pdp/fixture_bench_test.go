package pdp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The benchmarks, on the reference fixture (pdptest.NewFixture: partners with three
// integrations and a workload each, published through the real revoker log and followed by a real
// PDP). Run them with
//
//	go test -run XXX -bench BenchmarkFixture -benchtime=1s -count=6 ./pdp/ | tee new.txt
//
// and compare runs with benchstat. Each partners=N level builds its fixture once (about 3 s for
// 10,000 partners). No partner has Cedar policies here: this is the grant path.

// fixtureEnv is a fixture followed by a ready PDP, with one token per workload.
type fixtureEnv struct {
	f      *pdptest.Fixture
	pdp    *pdp.PDP
	tokens []string // EdDSA, one per workload
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixtureEnv(b *testing.B, partners int, cfg pdp.Config) *fixtureEnv {
	b.Helper()
	f := pdptest.NewFixture(b, newLog(b), partners)
	e := &fixtureEnv{f: f, pdp: followFixture(b, f, cfg)}
	for p := range partners {
		for i := range pdptest.IntegrationsPerPartner {
			e.tokens = append(e.tokens, f.Token(b, jose.EdDSA, p, i))
		}
	}
	return e
}

// followFixture starts a PDP with cfg following the fixture's log, and waits until it is ready.
func followFixture(b *testing.B, f *pdptest.Fixture, cfg pdp.Config) *pdp.PDP {
	b.Helper()
	cfg.Store, cfg.Source, cfg.Logger = storetest.OpenBolt(b, pdp.Schema), pdptest.NewSource(f.Log, time.Second), quietLogger()
	p := pdptest.Start(b, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		b.Fatalf("PDP not ready: %v", err)
	}
	return p
}

// latencies times n single calls of fn and reports their p50 and p99, beside the benchmark's
// mean. Timing each call adds the clock's cost (tens of ns), so these percentiles are upper bounds.
func latencies(b *testing.B, n int, fn func(i int)) {
	b.Helper()
	b.StopTimer()
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		fn(i)
		ds[i] = time.Since(start)
	}
	reportLatencies(b, ds)
	b.StartTimer()
}

// reportLatencies reports the p50 and p99 of ds (which it sorts).
func reportLatencies(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds()), "p99-ns")
}

func BenchmarkFixture(b *testing.B) {
	for _, partners := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("partners=%d", partners), func(b *testing.B) {
			e := newFixtureEnv(b, partners, pdp.Config{})
			benchmarkDecisions(b, e)
			if partners == 10_000 {
				b.Run("snapshot-memory", func(b *testing.B) { benchmarkSnapshotMemory(b, e.f) })
				b.Run("cold-start", func(b *testing.B) { benchmarkColdStart(b, e.f) })
			}
		})
	}
	// A token seen for the first time: the cache is off, so every call verifies the signature.
	b.Run("first-seen", func(b *testing.B) {
		f := pdptest.NewFixture(b, newLog(b), 100)
		p := followFixture(b, f, pdp.Config{TokenCacheSize: -1})
		for _, alg := range pdptest.FixtureAlgorithms {
			b.Run("alg="+string(alg), func(b *testing.B) {
				req := pdp.CheckRequest{Token: f.Token(b, alg, 7, 1), Action: "read", Resource: pdptest.FixtureAudience}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if d, _ := p.Check(ctx, req); !d.Allow {
						b.Fatalf("deny: %v", d.Reasons)
					}
				}
			})
		}
	})
}

// benchmarkDecisions runs the decision benchmarks on a ready fixture PDP.
func benchmarkDecisions(b *testing.B, e *fixtureEnv) {
	ctx := context.Background()
	reqs := make([]pdp.CheckRequest, len(e.tokens))
	for i, tok := range e.tokens {
		reqs[i] = pdp.CheckRequest{Token: tok, Action: "read", Resource: pdptest.FixtureAudience}
	}
	// Warm the cache: the first decision on a token verifies its signature and caches it, the
	// second makes what the cache keeps for the current state.
	for range 2 {
		for i := range reqs {
			if d, err := e.pdp.Check(ctx, reqs[i]); err != nil || !d.Allow {
				b.Fatalf("Check = %+v, %v", d, err)
			}
		}
	}
	check := func(b *testing.B, req *pdp.CheckRequest) {
		if d, _ := e.pdp.Check(ctx, *req); !d.Allow {
			b.Fatalf("deny: %v", d.Reasons)
		}
	}
	checkToken := func(b *testing.B, tok string) {
		if d, _ := e.pdp.Check(ctx, pdp.CheckRequest{Token: tok, Action: "read", Resource: pdptest.FixtureAudience}); !d.Allow {
			b.Fatalf("deny: %v", d.Reasons)
		}
	}

	// The grant path, warm cache: one token, then every workload's token in turn (the cache and
	// the state's maps are then read all over, as under real traffic).
	b.Run("grant-one-token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check(b, &reqs[0])
		}
		latencies(b, 20_000, func(int) { check(b, &reqs[0]) })
	})
	// Every token in turn, with no locality (a prime stride). The request is built on the stack
	// from the token, as a server handler builds it from the wire: indexing a 30,000-element array
	// of CheckRequests (7 MB) would add the harness's own cache miss to every decision. The
	// token's bytes are cold, which is realistic for scattered tokens.
	b.Run("grant-all-tokens", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			checkToken(b, e.tokens[i%len(e.tokens)])
			i += 7919 // a prime stride: no locality from the fixture's order
		}
		latencies(b, 20_000, func(i int) { checkToken(b, e.tokens[(i*7919)%len(e.tokens)]) })
	})
	// As grant-all-tokens, but each token's bytes are fresh in the CPU cache, as a server handler
	// finds them right after decoding the request from the wire: the timed call gets a copy made
	// just before (the one allocation per op is that copy, the harness's, not the decision's).
	b.Run("grant-all-tokens-decoded", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			checkToken(b, strings.Clone(e.tokens[i%len(e.tokens)]))
			i += 7919
		}
		b.StopTimer()
		ds := make([]time.Duration, 20_000)
		for i := range ds {
			tok := strings.Clone(e.tokens[(i*7919)%len(e.tokens)])
			start := time.Now()
			checkToken(b, tok)
			ds[i] = time.Since(start)
		}
		reportLatencies(b, ds)
	})
	// The harness alone, for grant-all-tokens: the same loop and timing around a call that only
	// reads the token's length. Its p50 is the clock's cost included in every p50 above.
	b.Run("harness-empty", func(b *testing.B) {
		n := 0
		i := 0
		for b.Loop() {
			n += len(e.tokens[i%len(e.tokens)])
			i += 7919
		}
		latencies(b, 20_000, func(i int) { n += len(e.tokens[(i*7919)%len(e.tokens)]) })
		runtime.KeepAlive(n)
	})
	b.Run("grant-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				req := &reqs[(i*7919)%len(reqs)]
				if d, _ := e.pdp.Check(ctx, *req); !d.Allow {
					b.Errorf("deny: %v", d.Reasons)
					return
				}
				i++
			}
		})
	})
	b.Run("claims", func(b *testing.B) {
		claims := make([]pdp.CheckRequest, 0, 1024)
		for p := 0; p < e.f.Partners && len(claims) < cap(claims); p += max(1, e.f.Partners/1024) {
			claims = append(claims, pdp.CheckRequest{
				Claims: &pdp.VerifiedClaims{Claims: e.f.Claims(p, 0), KeyID: e.f.Keys[jose.EdDSA].Kid}, Trusted: true,
				Action: "read", Resource: pdptest.FixtureAudience,
			})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			check(b, &claims[i%len(claims)])
			i++
		}
	})
	b.Run("workload", func(b *testing.B) {
		wl := make([]pdp.CheckRequest, 0, 1024)
		for p := 0; p < e.f.Partners && len(wl) < cap(wl); p += max(1, e.f.Partners/1024) {
			wl = append(wl, pdp.CheckRequest{WorkloadID: pdptest.WorkloadID(p, 2), Trusted: true, Action: "write", Resource: pdptest.FixtureAudience})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			check(b, &wl[i%len(wl)])
			i++
		}
	})
	b.Run("batch-10", func(b *testing.B) {
		batch := make([]pdp.CheckRequest, 10)
		for i := range batch {
			batch[i] = reqs[(i*7919)%len(reqs)]
		}
		b.ReportAllocs()
		for b.Loop() {
			ds, err := e.pdp.CheckBatch(ctx, batch, pdp.ExecuteAll, 0)
			if err != nil || len(ds) != len(batch) || !ds[9].Allow {
				b.Fatalf("CheckBatch = %v, %v", ds, err)
			}
		}
	})
}

// benchmarkSnapshotMemory reports the heap a PDP's state of the fixture takes, loaded from the
// PDP's cache file as at a cold start: the heap after a GC with the state held, minus before.
func benchmarkSnapshotMemory(b *testing.B, f *pdptest.Fixture) {
	path := cacheFile(b, f)
	st, err := store.OpenBolt(path, pdp.Schema)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var ms runtime.MemStats
	var heap, total float64
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		var s *feed.State
		if err := st.View(func(tx store.Tx) (err error) { s, err = feed.Load(tx); return err }); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = float64(ms.HeapAlloc-before) / (1 << 20)
		total = float64(ms.HeapInuse) / (1 << 20)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(heap, "snapshot-MiB")
	b.ReportMetric(total, "process-heap-inuse-MiB")
}

// benchmarkColdStart measures a restart: open the PDP's bbolt cache holding the fixture's state,
// load it, follow the feed (already caught up), and answer the first decision.
func benchmarkColdStart(b *testing.B, f *pdptest.Fixture) {
	path := cacheFile(b, f)
	tok := f.Token(b, jose.EdDSA, 4242%f.Partners, 0)
	src := pdptest.NewSource(f.Log, time.Second)
	for b.Loop() {
		st, err := store.OpenBolt(path, pdp.Schema)
		if err != nil {
			b.Fatal(err)
		}
		p, err := pdp.New(pdp.Config{Store: st, Source: src, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		if err := p.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		d, err := p.Check(ctx, pdp.CheckRequest{Token: tok, Action: "read", Resource: pdptest.FixtureAudience})
		if err != nil || !d.Allow {
			b.Fatalf("first decision = %+v, %v", d, err)
		}
		b.StopTimer()
		cancel()
		<-done
		st.Close()
		b.StartTimer()
	}
}

// cacheFile writes the fixture's state into a PDP cache file, as a PDP that followed the feed
// leaves it, and returns its path.
func cacheFile(b *testing.B, f *pdptest.Fixture) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "pdp.db")
	st, err := store.OpenBolt(path, pdp.Schema)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, f.Log.State()) }); err != nil {
		b.Fatal(err)
	}
	return path
}
