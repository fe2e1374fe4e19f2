package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The embedded etcd members' HTTP connections (replicas_test.go) outlive their tests briefly.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

var schema = store.Schema{Name: "outboxtest", Version: 1, Buckets: []string{outbox.Bucket, "data"}}

// flaky publishes through the real revoker, but fails while down is set, and can fail after the
// revoker has appended (a lost reply), the way a network does.
type flaky struct {
	log       *revoker.Log
	down      atomic.Bool
	loseReply atomic.Bool
	calls     atomic.Int64
}

func (f *flaky) Publish(ctx context.Context, entries []*treatyv1.PublishEntry) ([]uint64, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, errors.New("connection refused")
	}
	seqs, err := f.log.Publish(ctx, entries)
	if err == nil && f.loseReply.CompareAndSwap(true, false) {
		return nil, errors.New("reply lost")
	}
	return seqs, err
}

func partnerEvent(id string) *treatyv1.Event {
	return &treatyv1.Event{Actor: "test", Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
		PartnerId: id, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}
}

// write queues a partner event alongside a data record, as a service write does.
func write(t *testing.T, st store.Store, id string) uint64 {
	t.Helper()
	entry, err := queue(st, id)
	if err != nil {
		t.Fatal(err)
	}
	return entry
}

// queue is write for goroutines other than the test's.
func queue(st store.Store, id string) (uint64, error) {
	var entry uint64
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put("data", []byte(id), []byte("x")); err != nil {
			return err
		}
		var err error
		entry, err = outbox.Add(tx, "test", partnerEvent(id))
		return err
	})
	return entry, err
}

func setup(t *testing.T) (store.Store, *revoker.Log, *flaky) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.OpenBolt(t, schema), log, &flaky{log: log}
}

func run(t *testing.T, r *outbox.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPublishesInOrderAndReturnsSequences(t *testing.T) {
	st, log, pub := setup(t)
	r := outbox.NewRelay(st, pub, slog.Default())
	run(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, id := range []string{"a", "b", "c"} {
		seq, err := r.Wait(ctx, write(t, st, id))
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("%s published at %d, want %d", id, seq, i+1)
		}
		if _, ok := log.State().Partner(id); !ok {
			t.Fatalf("partner %s not in the feed", id)
		}
	}
	if n, _ := r.Pending(); n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
}

func TestSurvivesOutagesWithoutLossOrDuplicates(t *testing.T) {
	st, log, pub := setup(t)
	pub.down.Store(true)
	r := outbox.NewRelay(st, pub, slog.Default())
	run(t, r)

	// While the revoker is down the write is durable and the waiter is told so.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	first := write(t, st, "a")
	if _, err := r.Wait(short, first); fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("Wait while down = %v, want Unavailable", err)
	}
	if n, _ := r.Pending(); n != 1 {
		t.Fatalf("pending = %d, want 1", n)
	}

	// The reply to the first successful publish is lost: the relay republishes, and the
	// revoker's idempotency keeps it at one event.
	pub.loseReply.Store(true)
	pub.down.Store(false)
	second := write(t, st, "b")
	ctx, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	seq, err := r.Wait(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 2 || log.Head() != 2 {
		t.Fatalf("second at %d, head %d; want 2 and 2 (no duplicates)", seq, log.Head())
	}
	if got, _ := r.Wait(ctx, first); got != 1 {
		t.Fatalf("first at %d, want 1", got)
	}
	if pub.calls.Load() < 3 {
		t.Fatalf("publisher called %d times; the lost reply should have forced a retry", pub.calls.Load())
	}
}

func TestQueuedEntriesSurviveRestart(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "svc.db")
	st, err := store.OpenBolt(path, schema)
	if err != nil {
		t.Fatal(err)
	}
	write(t, st, "a")
	write(t, st, "b")
	st.Close() // the process dies before relaying

	st2 := storetest.OpenBoltAt(t, path, schema)
	r := outbox.NewRelay(st2, &flaky{log: log}, slog.Default())
	run(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for log.Head() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("queued entries not published after restart; head %d", log.Head())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Entry ids keep counting after a restart, never reusing a published one.
	if id := write(t, st2, "c"); id != 3 {
		t.Fatalf("next entry id = %d, want 3", id)
	}
}
