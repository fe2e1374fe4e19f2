package issuer_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/issuer"
)

// BenchmarkIssue measures Issue end to end with its real neighbours, as newEnv builds them: a
// private_key_jwt assertion verified against the registry's key (looked up over gRPC), the PDP
// asked over gRPC, the token signed (EdDSA) and recorded, with the assertion's jti, in the
// inventory's bbolt file, fsync'd. Assertions are signed before the timer starts, one per
// iteration, round-robin over 16 workloads. The parallel variant is the issuer's group commit at
// work: run it with -cpu 1,2 and -benchtime to taste; its parallelism is 16 goroutines per CPU,
// which at -cpu 2 is 32 concurrent requests, the issue's target.
//
// The variant directory=cached wraps the registry's Directory in CachedDirectory (one second).
func BenchmarkIssue(b *testing.B) {
	b.Run("directory=registry", func(b *testing.B) { benchmarkIssue(b, newEnv(b)) })
	b.Run("directory=cached", func(b *testing.B) {
		benchmarkIssue(b, newEnv(b, func(c *issuer.Config) { c.Directory = issuer.CachedDirectory(c.Directory, time.Second) }))
	})
}

func benchmarkIssue(b *testing.B, e *env) {
	e.activeKey()
	const workloads = 16
	ids := make([]string, workloads)
	for n := range ids {
		ids[n] = fmt.Sprintf("bench-%02d", n)
		e.addWorkload(ids[n], integration)
	}
	// The PDP has applied the workloads once one issuance for the last one succeeds.
	e.issue(e.requestAs(ids[workloads-1]))
	pool := func(n int) []issuer.Request {
		reqs := make([]issuer.Request, n)
		for k := range reqs {
			id := ids[k%workloads]
			a, err := issuer.SignAssertion(id, issuerURL, e.keys[id], e.clock.Now(), 5*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			reqs[k] = issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience}
		}
		return reqs
	}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		reqs := pool(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for k := range b.N {
			if _, err := e.iss.Issue(ctx, reqs[k]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("parallel", func(b *testing.B) {
		reqs := pool(b.N)
		next := make(chan issuer.Request, len(reqs))
		for _, r := range reqs {
			next <- r
		}
		close(next)
		b.SetParallelism(16)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.iss.Issue(ctx, <-next); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	})
}

// processCPU returns the CPU time (user and system) the process has used, in nanoseconds: the
// benchmark's whole world (registry, PDP, revoker, gRPC on both sides) runs in it. On a shared
// machine it is a steadier measure than ns/op, which other processes' load inflates.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
