package revoker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkRevokeParallel measures durable (fsync'd) credential revocations, the kill switch's
// unit of work, on a real bbolt file, from one caller (every revocation pays its own fsync) and
// from 64 concurrent callers (the group commit shares each fsync among the revocations queued
// while the previous one ran). revocations/s is the figure to compare; the target at 64 callers
// is 5,000/s. revocations/commit is how many revocations each transaction (one fsync'd commit)
// carried.
func BenchmarkRevokeParallel(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			l, err := revoker.Open(storetest.OpenBolt(b, revoker.Schema), revoker.Config{})
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := n.Add(1)
						if i > int64(b.N) {
							return
						}
						r := revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: fmt.Sprintf("jti-%d", i), Reason: "bench"}
						if _, err := l.Revoke(context.Background(), r); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
			b.ReportMetric(float64(b.N)/float64(revoker.Batches(l)), "revocations/commit")
		})
	}
}
