package feed_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// BenchmarkApplyRevocations folds one group commit's worth of credential revocations (50) into a
// state that already denylists many credentials: the revoker's work per commit, and a PDP's per
// applied batch. An edit copies only the pieces of the maps it touches, so the cost should not
// grow with the denylist.
func BenchmarkApplyRevocations(b *testing.B) {
	exp := time.Now().Add(time.Hour)
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("denylisted=%d", size), func(b *testing.B) {
			ed := feed.Empty("bench").Edit()
			for i := range size {
				ev := credRevoked(fmt.Sprintf("old-%d", i), exp)
				ev.Sequence = uint64(i + 1)
				if err := ed.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
			s := ed.State()
			batch := make([]*treatyv1.Event, 50)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ed := s.Edit()
				for j := range batch {
					ev := credRevoked(fmt.Sprintf("new-%d", i), exp)
					ev.Sequence = s.Sequence() + uint64(j) + 1
					batch[j] = ev
					i++
				}
				for _, ev := range batch {
					if err := ed.Apply(ev); err != nil {
						b.Fatal(err)
					}
				}
				ed.State()
			}
		})
	}
}
