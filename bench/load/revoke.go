package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/bench/internal/dial"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// revoke measures durable revocation throughput over gRPC: c callers revoke distinct credentials
// (unknown jtis, which the revoker accepts and keeps for the global maximum lifetime) for d, each
// waiting for its reply, which comes only after the revocation is fsync'd.
//
//	treaty serve --data /tmp/treaty-rev --services revoker --listen 127.0.0.1:7434 --log-level warn &
//	go run ./bench/load revoke -addr 127.0.0.1:7434 -c 1,64
func revoke(args []string) error {
	fs := flag.NewFlagSet("revoke", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:7433", "server address (a revoker)")
	conc := fs.String("c", "1,64", "concurrencies, comma-separated")
	duration := fs.Duration("d", 5*time.Second, "measuring time of each phase")
	rounds := fs.Int("rounds", 3, "rounds per concurrency; the median round is reported")
	serverPID := fs.Int("server-pid", 0, "the server's process id, to report its CPU time per revocation")
	fs.Parse(args)

	conn, err := dial.Server(*addr, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	client := treatyv1.NewRevocationServiceClient(conn)
	ctx := context.Background()
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // distinct jtis across runs on one log
	call := func(i int) error {
		resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{
			TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: "load-" + run + "-" + strconv.Itoa(i),
			Reason: "load test", Actor: "bench/load",
		})
		if err == nil && resp.GetAlreadyApplied() {
			err = fmt.Errorf("revocation %d was already applied: jtis collide", i)
		}
		return err
	}
	if err := call(0); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	fmt.Printf("server %s, %v per phase, median of %d rounds\n", *addr, *duration, *rounds)
	fmt.Printf("%4s %10s %10s %10s %14s %8s %12s\n", "c", "revokes", "p50", "p99", "revocations/s", "errors", "server-cpu")
	base := 0
	for _, cs := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || c < 1 {
			return fmt.Errorf("bad concurrency %q", cs)
		}
		var rs []result
		for range *rounds {
			off := base
			before := processCPU(*serverPID)
			r := measure(func(i int) error { return call(off + i) }, c, *duration)
			r.serverCPU = processCPU(*serverPID) - before
			base += r.calls + c + 1
			rs = append(rs, r)
		}
		r := median(rs)
		fmt.Printf("%4d %10d %10v %10v %14.0f %8d %12v\n", c, r.calls, r.p50, r.p99, r.throughput(), r.errors, r.cpuPerCall())
	}
	return nil
}
