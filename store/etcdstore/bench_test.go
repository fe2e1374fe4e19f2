package etcdstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// BenchmarkUpdate measures acknowledged (quorum-durable) Updates on one- and three-member
// clusters: parallel writers of distinct keys, and parallel writers contending for one counter
// with Update (each increment read-modify-writes it, so conflicts force reruns) and with Batch
// (group commit), 8 writers per core. Run it with
// -benchtime=1s -count=3; it starts its clusters once per sub-benchmark.
func BenchmarkUpdate(b *testing.B) {
	for _, members := range []int{1, 3} {
		c := etcdtest.Start(b, members)
		s := openBench(b, c, fmt.Sprintf("/bench/%d", members))
		b.Run(fmt.Sprintf("members=%d/distinct", members), func(b *testing.B) {
			var next atomic.Uint64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := store.Uint64Key(next.Add(1))
					if err := s.Update(func(tx store.Tx) error { return tx.Put("a", k, []byte("value")) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		for _, mode := range []string{"update", "batch"} {
			commit := s.Update
			if mode == "batch" {
				commit = s.Batch
			}
			b.Run(fmt.Sprintf("members=%d/counter-%s", members, mode), func(b *testing.B) {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						err := commit(func(tx store.Tx) error {
							n := store.KeyUint64(tx.Get("a", []byte("seq"))) + 1
							return tx.Put("a", []byte("seq"), store.Uint64Key(n))
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

func openBench(b *testing.B, c *etcdtest.Cluster, prefix string) store.Store {
	b.Helper()
	s, err := etcdstore.Open(c.Client(), prefix, storetest.Schema)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkView measures a View of four reads on a three-member cluster, the shape of the
// revoker's catch-up (epoch, retention, head, events): the first read fixes the snapshot, the
// others read at it.
func BenchmarkView(b *testing.B) {
	c := etcdtest.Start(b, 3)
	s := openBench(b, c, "/bench/view")
	keys := [][]byte{[]byte("epoch"), []byte("retained"), []byte("head"), []byte("events")}
	if err := s.Update(func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Put("a", k, []byte("value")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		err := s.View(func(tx store.Tx) error {
			for _, k := range keys {
				if tx.Get("a", k) == nil {
					return fmt.Errorf("%s missing", k)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
