package revokersvc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// replica is one revoker replica on a shared etcd prefix, served on loopback.
type replica struct {
	st     *etcdstore.Store
	log    *revoker.Log
	svc    *revokersvc.Service
	client treatyv1.RevocationServiceClient
	kill   func() // ends its subscriptions, stops following and closes its store
}

func serveReplica(t *testing.T, c *etcdtest.Cluster) *replica {
	t.Helper()
	st, err := etcdstore.Open(c.Client(), "/treaty/revoker", revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	log, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.RunCompaction(ctx) // as the server runs it: it also follows the other replicas
	}()
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond})
	var once sync.Once
	r := &replica{st: st, log: log, svc: svc, kill: func() {
		once.Do(func() {
			svc.Close()
			st.Close()
			cancel()
			<-done
		})
	}}
	t.Cleanup(r.kill)
	r.client = treatyv1.NewRevocationServiceClient(grpctest.Serve(t, svc.Register))
	return r
}

// receive reads events from stream after after, checking that each follows the one before, until
// it has read through until or the stream ends.
func receive(stream grpc.ServerStreamingClient[treatyv1.SubscribeResponse], after, until uint64) ([]*treatyv1.Event, error) {
	var got []*treatyv1.Event
	for after < until {
		m, err := stream.Recv()
		if err != nil {
			return got, err
		}
		ev := m.GetEvent()
		if ev == nil {
			continue
		}
		if ev.GetSequence() != after+1 {
			return got, fmt.Errorf("received %d after %d: a gap or a duplicate", ev.GetSequence(), after)
		}
		got = append(got, ev)
		after++
	}
	return got, nil
}

func storeHead(t *testing.T, st store.Store) uint64 {
	t.Helper()
	var head uint64
	err := st.View(func(tx store.Tx) error {
		k, _ := tx.Last("events")
		head = store.KeyUint64(k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// TestReplicasSubscribe: two revoker replicas on a three-member etcd cluster, revocations
// through both over gRPC; a subscriber of b receives every one, in order, with no gap or
// duplicate; then, with one etcd member stopped, revocations go on through both, b is killed
// mid-load and its subscriber resumes on a after the last sequence it received, with nothing
// lost.
func TestReplicasSubscribe(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a, b := serveReplica(t, c), serveReplica(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := b.client.Subscribe(ctx, &treatyv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	load := func(r *replica, name string, workers, n int, mayFail bool) {
		for w := range workers {
			wg.Go(func() {
				for i := range n {
					jti := fmt.Sprintf("jti-%s-%d-%d", name, w, i)
					resp, err := r.client.Revoke(ctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
						TargetId: jti, Reason: "replicas", RequestId: "req-" + jti})
					if err != nil {
						if !mayFail {
							t.Errorf("revoke %s: %v", jti, err)
						}
						return
					}
					mu.Lock()
					if other, dup := acked[resp.GetSequence()]; dup {
						t.Errorf("sequence %d acknowledged for %s and %s", resp.GetSequence(), other, jti)
					}
					acked[resp.GetSequence()] = jti
					mu.Unlock()
				}
			})
		}
	}
	load(a, "a1", 8, 25, false)
	load(b, "b1", 8, 25, false)
	wg.Wait()
	const first = 2 * 8 * 25
	got, err := receive(stream, 0, first)
	if err != nil {
		t.Fatalf("subscriber of b: %v", err)
	}
	for _, ev := range got {
		if jti := ev.GetCredentialRevoked().GetJti(); acked[ev.GetSequence()] != jti {
			t.Fatalf("event %d revokes %s; %q was acknowledged at it", ev.GetSequence(), jti, acked[ev.GetSequence()])
		}
	}

	// One etcd member stops: a majority remains, and revocations go on. Then b dies mid-load;
	// its subscriber resumes on a.
	c.Stop(0)
	load(a, "a2", 4, 50, false)
	load(b, "b2", 4, 500, true)
	for b.log.Head() < first+50 {
		time.Sleep(time.Millisecond)
	}
	received := make(chan []*treatyv1.Event, 1)
	go func() {
		more, _ := receive(stream, first, ^uint64(0)) // until the stream ends
		received <- more
	}()
	b.kill()
	more := <-received
	got = append(got, more...)
	last := uint64(len(got))
	wg.Wait()
	head := storeHead(t, a.st)
	resumed, err := a.client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: last})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := receive(resumed, last, head)
	if err != nil {
		t.Fatalf("resumed on a after %d: %v", last, err)
	}
	got = append(got, rest...) // sequences 1..head, each once, in order (receive checked)
	for seq, jti := range acked {
		if seq > head || got[seq-1].GetCredentialRevoked().GetJti() != jti {
			t.Fatalf("%s was acknowledged at %d, which the subscriber did not receive as such (head %d)", jti, seq, head)
		}
	}
	t.Logf("received %d events from b before it died, %d from a after; head %d, %d acknowledged", last, len(rest), head, len(acked))
}
