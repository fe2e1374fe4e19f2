package decisionlog_test

import (
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
					l.Record(req, d, time.Microsecond)
				}
			})
			b.StopTimer()
			l.Close()
			st := l.Stats()
			b.ReportMetric(float64(st.Written)/float64(b.N), "written/op")
		})
	}
}
