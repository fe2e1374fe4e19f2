package etcdstore_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// requestTimeout is the stores' request deadline in these tests: short, so that a cluster without
// quorum is reported quickly.
const requestTimeout = 2 * time.Second

// leader returns the index of the cluster's leader.
func leader(t *testing.T, c *etcdtest.Cluster, cli *clientv3.Client) int {
	t.Helper()
	for i, ep := range c.Endpoints() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err != nil {
			t.Fatalf("status of member %d: %v", i, err)
		}
		if st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member is the leader")
	return -1
}

// putPair writes key n in both buckets in one transaction, so a half-applied one would show.
func putPair(s store.Store, n uint64) error {
	return s.Update(func(tx store.Tx) error {
		if err := tx.Put("a", store.Uint64Key(n), []byte("v")); err != nil {
			return err
		}
		return tx.Put("b", store.Uint64Key(n), []byte("v"))
	})
}

// pairs returns, for keys 1..n, whether each is in bucket a and in bucket b.
func pairs(t *testing.T, s store.Store, n uint64) (inA, inB []bool) {
	t.Helper()
	err := s.View(func(tx store.Tx) error {
		for i := uint64(1); i <= n; i++ {
			inA = append(inA, tx.Get("a", store.Uint64Key(i)) != nil)
			inB = append(inB, tx.Get("b", store.Uint64Key(i)) != nil)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return inA, inB
}

// A three-member cluster keeps accepting Updates with its leader stopped, and every
// acknowledged write is readable from each remaining member. With two members stopped an Update
// fails with fail.Unavailable within the request deadline, and once quorum is back that write is
// there entirely or not at all.
func TestClusterQuorum(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := c.Client()
	s := open(t, cli, "/quorum", storetest.Schema, etcdstore.WithRequestTimeout(requestTimeout))
	n := uint64(0)
	for range 10 {
		n++
		if err := putPair(s, n); err != nil {
			t.Fatalf("write %d: %v", n, err)
		}
	}

	down := leader(t, c, cli)
	c.Stop(down)
	for range 20 {
		n++
		if err := putPair(s, n); err != nil {
			t.Fatalf("write %d with member %d (the leader) stopped: %v", n, down, err)
		}
	}
	var up []int
	for i := range 3 {
		if i == down {
			continue
		}
		up = append(up, i)
		ms := open(t, c.Client(c.Endpoint(i)), "/quorum", storetest.Schema, etcdstore.WithRequestTimeout(requestTimeout))
		inA, inB := pairs(t, ms, n)
		for k := range n {
			if !inA[k] || !inB[k] {
				t.Fatalf("member %d: acknowledged write %d is missing", i, k+1)
			}
		}
	}

	c.Stop(up[0])
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"blind write", func() error { return putPair(s, n+1) }},
		{"read and write", func() error {
			return s.Update(func(tx store.Tx) error {
				if tx.Get("a", store.Uint64Key(1)) == nil {
					return fmt.Errorf("key 1 is missing")
				}
				return tx.Put("a", store.Uint64Key(n+2), []byte("v"))
			})
		}},
		{"view", func() error {
			return s.View(func(tx store.Tx) error { tx.Get("a", store.Uint64Key(1)); return nil })
		}},
	} {
		start := time.Now()
		err := tc.fn()
		took := time.Since(start)
		if fail.KindOf(err) != fail.Unavailable || !strings.Contains(err.Error(), "majority of the etcd members") {
			t.Errorf("%s without quorum: %v, want fail.Unavailable with advice", tc.name, err)
		}
		if took > 5*requestTimeout {
			t.Errorf("%s without quorum took %v, want about the %v request deadline", tc.name, took, requestTimeout)
		}
	}

	c.Restart(up[0])
	// Until every write is through, n+1 may still be applied, but never half of it.
	for range 5 {
		inA, inB := pairs(t, s, n+2)
		if inA[n] != inB[n] {
			t.Fatalf("the write that timed out is half there: in a %v, in b %v", inA[n], inB[n])
		}
		time.Sleep(100 * time.Millisecond)
	}
	n += 2
	n++
	if err := putPair(s, n); err != nil {
		t.Fatalf("write with quorum back: %v", err)
	}

	// The stopped leader catches up once restarted.
	c.Restart(down)
	ms := open(t, c.Client(c.Endpoint(down)), "/quorum", storetest.Schema, etcdstore.WithRequestTimeout(requestTimeout))
	inA, _ := pairs(t, ms, n)
	if !inA[0] || !inA[n-1] {
		t.Fatalf("restarted member %d lacks writes: key 1 %v, key %d %v", down, inA[0], n, inA[n-1])
	}
}

// Two stores on one prefix, through different members (as two replicas would), incrementing one
// counter concurrently, one with Update and one with Batch: the count is exact and no value is
// handed out twice. This is the property the feed's sequence counter needs.
func TestCounterAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 3)
	replicas := []store.Store{
		open(t, c.Client(c.Endpoint(0)), "/counter", storetest.Schema),
		open(t, c.Client(c.Endpoint(1)), "/counter", storetest.Schema),
	}
	const workers, each = 4, 25 // per replica
	total := len(replicas) * workers * each
	got := make(chan uint64, total)
	var wg sync.WaitGroup
	for r, s := range replicas {
		commit := s.Update
		if r == 1 {
			commit = s.Batch
		}
		for range workers {
			wg.Go(func() {
				for range each {
					var n uint64
					err := commit(func(tx store.Tx) error {
						n = store.KeyUint64(tx.Get("a", []byte("seq"))) + 1
						if err := tx.Put("a", []byte("seq"), store.Uint64Key(n)); err != nil {
							return err
						}
						return tx.Put("b", store.Uint64Key(n), []byte(fmt.Sprint(r)))
					})
					if err != nil {
						t.Errorf("replica %d: increment: %v", r, err)
						return
					}
					got <- n
				}
			})
		}
	}
	wg.Wait()
	close(got)
	seen := map[uint64]bool{}
	for n := range got {
		if seen[n] {
			t.Fatalf("value %d handed out twice", n)
		}
		seen[n] = true
	}
	if len(seen) != total {
		t.Fatalf("%d values handed out, want %d", len(seen), total)
	}
	var seq uint64
	var entries int
	replicas[0].View(func(tx store.Tx) error {
		seq = store.KeyUint64(tx.Get("a", []byte("seq")))
		return tx.Scan("b", nil, nil, func(k, v []byte) (bool, error) { entries++; return true, nil })
	})
	if seq != uint64(total) || entries != total {
		t.Fatalf("counter = %d with %d entries, want %d", seq, entries, total)
	}
}

// A cluster nobody answers for is reported as unavailable, with what to check, within the
// request deadline.
func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addr}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	start := time.Now()
	_, err = etcdstore.Open(cli, "/unreachable", storetest.Schema, etcdstore.WithRequestTimeout(time.Second))
	if fail.KindOf(err) != fail.Unavailable || !strings.Contains(err.Error(), "majority of the etcd members are running and reachable") {
		t.Fatalf("Open = %v, want fail.Unavailable with advice", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Open took %v with a 1s request deadline", took)
	}
}
