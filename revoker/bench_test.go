package revoker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkRevokeCredential measures one durable (fsync'd) credential revocation, the kill
// switch's unit of work, from one caller and from many: without group commit (a later issue) each
// append pays its own fsync.
func BenchmarkRevokeCredential(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			l, err := revoker.Open(storetest.OpenBolt(b, revoker.Schema), revoker.Config{})
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetParallelism(callers)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					jti := fmt.Sprintf("jti-%d", n.Add(1))
					if _, err := l.Revoke(context.Background(), revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: jti, Reason: "bench"}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
