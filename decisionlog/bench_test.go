package decisionlog_test

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/pdp"
)

// BenchmarkRecord measures what the decision path pays per decision, from parallel callers, with
// a real bbolt file behind the writer.
//   - keep-allows: every allow kept; when the writer falls behind, allows are shed (counted).
//   - sample-1pct: 1% of allows kept; the rest cost one atomic add.
//   - denies: every deny kept; when the writer falls behind, Record waits for it, so this
//     measures the writer's throughput as the decision path feels it.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rate  float64
		allow bool
	}{
		{"keep-allows", 0, true},
		{"sample-1pct", 0.01, true},
		{"denies", 0, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := open(b, decisionlog.Config{AllowSampleRate: bc.rate})
			req := &pdp.CheckRequest{Token: "eyJ.token", Action: "orders:read", Resource: "https://api.test", RequestID: "req-1"}
			d := &pdp.Decision{Allow: bc.allow, Reasons: granted, DecisionID: testDecisionID(1),
				Sequence: 42, Subject: "w1", Partner: "acme", TokenID: "jti-1"}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Record(*req, *d, time.Microsecond)
				}
			})
			b.StopTimer()
			l.Close()
			st := l.Stats()
			b.ReportMetric(float64(st.Written)/float64(b.N), "written/op")
		})
	}
}

// BenchmarkWriter measures the writer's cost per entry with realistic subjects (30,000 workloads,
// so the subject index takes keys all over its tree), as CPU time of the whole process per entry:
//   - saturated: denies from parallel callers, which wait for the writer, so batches are full.
//   - paced: denies at about 20,000 a second from one caller, as a busy PDP sends them: the
//     writer keeps up, and its batches are as large as it lets them grow.
//   - paced-300k: the same after 300,000 entries (unmeasured), as a log that keeps its entries
//     for days holds: the indexes' B-trees are as deep and wide as in production.
//   - paced-200: 200 denies a second (1% of 20,000 checks), where each commit holds few entries
//     and its fixed cost (fsync, meta and branch pages) is most of what an entry costs.
func BenchmarkWriter(b *testing.B) {
	const subjects = 30_000
	reqs := make([]pdp.CheckRequest, subjects)
	ds := make([]pdp.Decision, subjects)
	for i := range subjects {
		reqs[i] = pdp.CheckRequest{Token: "eyJ.token", Action: "orders:read", Resource: "https://api.test", RequestID: fmt.Sprintf("req-%d", i)}
		ds[i] = pdp.Decision{Reasons: revoked, DecisionID: testDecisionID(i), Sequence: 42,
			Subject: fmt.Sprintf("p%05d-i%d-w", i/3, i%3), Partner: fmt.Sprintf("p%05d", i/3), TokenID: fmt.Sprintf("load-%016x", i)}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.Run("saturated", func(b *testing.B) {
		l := open(b, decisionlog.Config{})
		var next atomic.Int64
		start := cpu()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1)) % subjects
				l.Record(reqs[i], ds[i], time.Microsecond)
			}
		})
		l.Close()
		b.StopTimer()
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	})
	// paced sends denies at perMs a millisecond (or one every -perMs milliseconds) from one
	// caller, after prefilling the log with prefill entries (not measured), so that its indexes
	// are as large as a busy PDP's.
	paced := func(b *testing.B, perMs, prefill int) {
		l := open(b, decisionlog.Config{QueueSize: 16_384})
		for i := range prefill {
			l.Record(reqs[i%subjects], ds[i%subjects], time.Microsecond)
		}
		for l.Stats().Written < uint64(prefill) {
			time.Sleep(time.Millisecond)
		}
		start := cpu()
		b.ResetTimer()
		tick := time.Now()
		for i := 0; i < b.N; i++ {
			l.Record(reqs[i%subjects], ds[i%subjects], time.Microsecond)
			switch {
			case perMs < 0:
				tick = tick.Add(time.Duration(-perMs) * time.Millisecond)
				time.Sleep(time.Until(tick))
			case i%perMs == perMs-1:
				tick = tick.Add(time.Millisecond)
				time.Sleep(time.Until(tick))
			}
		}
		l.Close()
		b.StopTimer()
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
	// 20,000 a second: the writer keeps up, and its batches are as large as it lets them grow.
	b.Run("paced", func(b *testing.B) { paced(b, 20, 0) })
	// The same with 300,000 entries already in the log.
	b.Run("paced-300k", func(b *testing.B) { paced(b, 20, 300_000) })
	// 200 a second, as 1% of 20,000 checks a second: the commits' fixed cost dominates.
	b.Run("paced-200", func(b *testing.B) { paced(b, -5, 0) })
}
