// Command load measures DecisionService.Check against the standard health Check (an empty unary
// RPC) on the same server, in the same run, at several concurrencies, with a lean client on the
// generated stubs: one connection, requests built in advance, each latency one clock reading
// pair. ghz's client costs far more than the server's work (see bench/ghz.sh), which hides what
// the decision adds; this client does not.
//
//	go run ./bench/load seed -data /tmp/treaty-load -partners 10000
//	treaty serve --data /tmp/treaty-load --listen 127.0.0.1:7433 --log-level warn &
//	go run ./bench/load run -addr 127.0.0.1:7433 -tokens /tmp/treaty-load/load-tokens.txt
//
// It is a measuring tool, not part of the treaty binary.
package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/treaty-dev/treaty/bench/internal/dial"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load seed|run|revoke|issue [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "seed":
		err = seed(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "revoke":
		err = revoke(os.Args[2:])
	case "issue":
		err = issue(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: seed, run, revoke or issue", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// result is one measured phase.
type result struct {
	name        string
	concurrency int
	calls       int
	errors      int64
	elapsed     time.Duration
	p50, p99    time.Duration
	serverCPU   time.Duration // the server's CPU time over the phase, with -server-pid
	clientCPU   time.Duration // this process's CPU time over the phase
}

// cpuPerCall is the server's CPU time per call.
func (r result) cpuPerCall() time.Duration {
	if r.calls == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.calls)
}

// clientCPUPerCall is this client's CPU time per call: on a machine the client shares with the
// server, what it takes is not the server's.
func (r result) clientCPUPerCall() time.Duration {
	if r.calls == 0 {
		return 0
	}
	return r.clientCPU / time.Duration(r.calls)
}

func (r result) throughput() float64 { return float64(r.calls) / r.elapsed.Seconds() }

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:7433", "server address")
	tokensPath := fs.String("tokens", "", "file of tokens, one per line (from seed); required")
	conc := fs.String("c", "1,32", "concurrencies, comma-separated")
	duration := fs.Duration("d", 5*time.Second, "measuring time of each phase")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time before each phase")
	rounds := fs.Int("rounds", 3, "rounds of (health, check) per concurrency, in turn (health first, then check first); the median round is reported")
	verbose := fs.Bool("v", false, "print every phase: throughput, p50, and the server's and this client's CPU per call")
	action := fs.String("action", "read", "action to check")
	resource := fs.String("resource", "api", "resource to check")
	serverPID := fs.Int("server-pid", 0, "the server's process id, if on this machine: reports its CPU time per call, which contention on a shared machine disturbs less than latency")
	only := fs.String("calls", "health,check", "calls to measure, comma-separated (one alone is for profiling the server)")
	fs.Parse(args)
	if *rounds < 1 {
		return fmt.Errorf("run: -rounds must be at least 1")
	}

	tokens, err := readTokens(*tokensPath)
	if err != nil {
		return err
	}
	conn, err := dial.Server(*addr, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	decisions := treatyv1.NewDecisionServiceClient(conn)

	ctx := context.Background()
	reqs := make([]*treatyv1.CheckRequest, len(tokens))
	for i, tok := range tokens {
		reqs[i] = &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: *action, Resource: *resource}
	}
	// Warm the server's token cache and check that the fixture allows, once the server has
	// caught up with its feed (a server just started answers syncing for a moment).
	ready := time.Now().Add(30 * time.Second)
	for i := 0; i < len(reqs); i++ {
		resp, err := decisions.Check(ctx, reqs[i])
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
			if i == 0 && slices.Contains(resp.GetReasons(), "syncing") && time.Now().Before(ready) {
				time.Sleep(100 * time.Millisecond)
				i--
				continue
			}
			return fmt.Errorf("the fixture's token was denied: %v", resp.GetReasons())
		}
	}
	hreq := encode(&healthpb.HealthCheckRequest{})
	creqs := make([]encoded, len(reqs))
	for i, r := range reqs {
		creqs[i] = encode(r)
	}
	calls := map[string]func(i int) error{
		"health": func(int) error {
			status, err := leanCall(ctx, conn, healthpb.Health_Check_FullMethodName, hreq)
			if err == nil && status != uint64(healthpb.HealthCheckResponse_SERVING) {
				err = fmt.Errorf("health: status %d", status)
			}
			return err
		},
		"check": func(i int) error {
			d, err := leanCall(ctx, conn, treatyv1.DecisionService_Check_FullMethodName, creqs[i%len(creqs)])
			if err == nil && d != uint64(treatyv1.Decision_DECISION_ALLOW) {
				err = fmt.Errorf("denied (decision %d)", d)
			}
			return err
		},
	}

	for _, name := range strings.Split(*only, ",") {
		if calls[name] == nil {
			return fmt.Errorf("bad -calls %q: health, check or both", *only)
		}
	}
	fmt.Printf("server %s, %d distinct tokens, %v per phase, median of %d rounds\n", *addr, len(tokens), *duration, *rounds)
	fmt.Printf("%-7s %4s %10s %10s %10s %12s %8s %12s\n", "call", "c", "calls", "p50", "p99", "calls/s", "errors", "server-cpu")
	for _, cs := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || c < 1 {
			return fmt.Errorf("bad concurrency %q", cs)
		}
		byName := map[string][]result{}
		order := strings.Split(*only, ",")
		for range *rounds {
			// Every round measures each call once, and the next round in the other order, so that
			// drift, and what one phase leaves to the next (garbage to collect), hit both alike.
			for _, name := range order {
				measure(calls[name], c, *warmup)
				server, self := processCPU(*serverPID), processCPU(os.Getpid())
				r := measure(calls[name], c, *duration)
				r.serverCPU, r.clientCPU = processCPU(*serverPID)-server, processCPU(os.Getpid())-self
				r.name, r.concurrency = name, c
				byName[name] = append(byName[name], r)
				if *verbose {
					fmt.Printf("  phase %-6s c=%d %8.0f/s p50 %v server CPU %v client CPU %v a call\n", name, c, r.throughput(), r.p50, r.cpuPerCall(), r.clientCPUPerCall())
				}
			}
			slices.Reverse(order)
		}
		for _, name := range strings.Split(*only, ",") {
			r := median(byName[name])
			fmt.Printf("%-7s %4d %10d %10v %10v %12.0f %8d %12v\n", r.name, r.concurrency, r.calls, r.p50, r.p99, r.throughput(), r.errors, r.cpuPerCall())
		}
		if len(byName["health"]) == 0 || len(byName["check"]) == 0 {
			continue
		}
		p50s, tputs := roundRatios(byName["health"], byName["check"])
		h, k := median(byName["health"]), median(byName["check"])
		fmt.Printf("check/health at c=%d: p50 %.3fx, p99 %.3fx, throughput %.3fx", c,
			float64(k.p50)/float64(h.p50), float64(k.p99)/float64(h.p99), k.throughput()/h.throughput())
		if *serverPID != 0 {
			fmt.Printf(", server CPU per call %.3fx", float64(k.cpuPerCall())/float64(h.cpuPerCall()))
		}
		fmt.Println()
		fmt.Printf("check/health at c=%d, median of the rounds' own ratios: p50 %.3fx (%s), throughput %.3fx (%s)\n",
			c, medianOf(p50s), spread(p50s), medianOf(tputs), spread(tputs))
	}
	return nil
}

// measure runs call from c goroutines for d and returns the latencies' percentiles and the
// throughput.
func measure(call func(i int) error, c int, d time.Duration) result {
	var (
		stop   atomic.Bool
		errs   atomic.Int64
		next   atomic.Int64
		wg     sync.WaitGroup
		perG   = make([][]time.Duration, c)
		starts = time.Now()
	)
	for g := range c {
		perG[g] = make([]time.Duration, 0, 1<<16)
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1))
				t := time.Now()
				if err := call(i); err != nil {
					errs.Add(1)
				}
				perG[g] = append(perG[g], time.Since(t))
			}
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(starts)
	var all []time.Duration
	for _, l := range perG {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{calls: len(all), errors: errs.Load(), elapsed: elapsed}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

// roundRatios returns each round's Check/health ratios of p50 and of throughput, health[i] and
// check[i] being the phases of round i. The two phases of a round are back to back, so their
// ratio sees one load on the machine; the median of those ratios is steadier on a shared machine
// than the ratio of the median rounds (both are printed).
func roundRatios(health, check []result) (p50s, tputs []float64) {
	for i := range min(len(health), len(check)) {
		h, k := health[i], check[i]
		p50s = append(p50s, float64(k.p50)/float64(h.p50))
		tputs = append(tputs, k.throughput()/h.throughput())
	}
	return p50s, tputs
}

// medianOf returns the median of xs (the upper one of an even count), sorting xs.
func medianOf(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// spread renders the spread of the rounds' ratios xs, sorting xs: their lower and upper
// quartiles, or with fewer than five rounds their range.
func spread(xs []float64) string {
	slices.Sort(xs)
	if len(xs) < 5 {
		return fmt.Sprintf("range %.3f-%.3f", xs[0], xs[len(xs)-1])
	}
	return fmt.Sprintf("quartiles %.3f-%.3f", xs[len(xs)/4], xs[len(xs)*3/4])
}

// median returns the round with the median throughput. It sorts a copy: the rounds stay in
// their order, which pairs each health phase with the Check phase of its round.
func median(rs []result) result {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.throughput(), b.throughput()) })
	return rs[len(rs)/2]
}

func readTokens(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("run: -tokens is required (seed writes DATA/load-tokens.txt)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("run: no tokens in %s", path)
	}
	return out, sc.Err()
}

// processCPU returns the user and system CPU time of process pid from /proc (Linux), or 0 without
// a pid or when it cannot be read.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second on Linux).
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}
