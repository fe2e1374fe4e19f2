package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/bench/internal/dial"
	"github.com/treaty-dev/treaty/bench/internal/workload"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// issueAudience is the audience of the integration the issue mode seeds and of the tokens it asks
// for.
const issueAudience = "https://api.load.treaty.test"

// issue measures IssuerService.IssueToken with private_key_jwt against a running server: every
// call authenticates a workload by a fresh client assertion (its jti single-use), is decided by
// the PDP and recorded durably in the inventory before the reply. It first onboards, through the
// server's RegistryService, one partner with one integration and -workloads workloads, each with
// its own Ed25519 key. Before each phase it signs a pool of assertions (unique jti, exp five
// minutes ahead) round-robin over the workloads, so the client's signing cost is not measured.
//
//	treaty serve --data /tmp/treaty-issue --listen 127.0.0.1:7433 --log-level warn &
//	go run ./bench/load issue -addr 127.0.0.1:7433 -c 1,32 -d 5s
func issue(args []string) error {
	fs := flag.NewFlagSet("issue", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:7433", "server address")
	conc := fs.String("c", "1,32", "concurrencies, comma-separated")
	duration := fs.Duration("d", 5*time.Second, "measuring time of each phase")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time before each phase")
	rounds := fs.Int("rounds", 3, "rounds per concurrency; the median round (by throughput) is reported")
	workloads := fs.Int("workloads", 64, "workloads to onboard (each with its own key)")
	maxRate := fs.Int("max-rate", 6000, "issuances a second the assertion pool is sized for; calls beyond the pool fail")
	serverPID := fs.Int("server-pid", 0, "the server's process id, if on this machine: reports its CPU time per issuance")
	fs.Parse(args)

	conn, err := dial.Server(*addr, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := context.Background()
	iss := treatyv1.NewIssuerServiceClient(conn)
	desc, err := iss.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
	if err != nil {
		return fmt.Errorf("issue: GetIssuer: %w", err)
	}
	keys, err := workload.Onboard(ctx, treatyv1.NewRegistryServiceClient(conn), "load-"+randomHex(3), *workloads, issueAudience)
	if err != nil {
		return fmt.Errorf("issue: onboard: %w", err)
	}

	fmt.Printf("server %s, issuer %s, %d workloads, private_key_jwt (EdDSA assertions), %v per phase, median of %d rounds\n",
		*addr, desc.GetIssuer(), len(keys), *duration, *rounds)
	fmt.Printf("%-7s %4s %10s %10s %10s %12s %8s %12s %12s\n", "call", "c", "calls", "p50", "p99", "calls/s", "errors", "server-cpu", "client-cpu")
	var firstErr atomic.Pointer[error]
	for _, cs := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || c < 1 {
			return fmt.Errorf("bad concurrency %q", cs)
		}
		var rs []result
		for range *rounds {
			for _, d := range []time.Duration{*warmup, *duration} {
				pool, err := workload.Presign(keys, desc.GetIssuer(), int(float64(*maxRate)*d.Seconds())+1000)
				if err != nil {
					return err
				}
				var next atomic.Int64
				call := func(int) error {
					n := next.Add(1) - 1
					if n >= int64(len(pool)) {
						return fmt.Errorf("the assertion pool of %d is used up; raise -max-rate", len(pool))
					}
					_, err := iss.IssueToken(ctx, &treatyv1.IssueTokenRequest{
						ClientAssertion: pool[n], Scopes: []string{"read"}, Audience: issueAudience,
					})
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
					}
					return err
				}
				if d == *warmup {
					measure(call, c, d)
					continue
				}
				before, self := processCPU(*serverPID), processCPU(os.Getpid())
				r := measure(call, c, d)
				r.serverCPU, r.clientCPU = processCPU(*serverPID)-before, processCPU(os.Getpid())-self
				r.name, r.concurrency = "issue", c
				rs = append(rs, r)
			}
		}
		r := median(rs)
		fmt.Printf("%-7s %4d %10d %10v %10v %12.0f %8d %12v %12v\n", r.name, r.concurrency, r.calls, r.p50, r.p99, r.throughput(), r.errors, r.cpuPerCall(), r.clientCPUPerCall())
	}
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first error: %v\n", *e)
	}
	return nil
}
