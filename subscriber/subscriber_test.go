package subscriber_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/subscriber"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// revokerAt serves log on addr ("127.0.0.1:0" for any port) until the returned stop is called.
func revokerAt(t *testing.T, log *revoker.Log, addr string) (string, func()) {
	t.Helper()
	var (
		lis net.Listener
		err error
	)
	// The port of a server just stopped is free again at once on loopback, but allow a moment.
	for range 50 {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond})
	srv := grpc.NewServer()
	svc.Register(srv)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	stop := func() {
		svc.Close()
		srv.Stop()
		<-served
	}
	return lis.Addr().String(), stop
}

func publish(t *testing.T, log *revoker.Log, prefix string, n int) uint64 {
	t.Helper()
	entries := make([]*treatyv1.PublishEntry, n)
	for i := range entries {
		id := fmt.Sprintf("%s-%d", prefix, i)
		entries[i] = &treatyv1.PublishEntry{RequestId: id, Event: &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: id, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}}
	}
	seqs, err := log.Publish(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	return seqs[len(seqs)-1]
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(subscriber.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestFollowerResumesAcrossRestarts stops the revoker's server mid-stream, twice, while the log
// grows: the follower sees every event exactly once, in order.
func TestFollowerResumesAcrossRestarts(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := revokerAt(t, log, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr)})
	defer f.Close()

	var want uint64
	var kept []*treatyv1.Event // every event returned, which later Next calls must leave alone
	next := func(upTo uint64) {
		t.Helper()
		for want < upTo {
			ev, err := f.Next()
			if err != nil {
				t.Fatalf("next after %d: %v", want, err)
			}
			if ev.GetSequence() != want+1 {
				t.Fatalf("got %d after %d", ev.GetSequence(), want)
			}
			want = ev.GetSequence()
			kept = append(kept, ev)
		}
	}
	next(publish(t, log, "a", 10))
	for r := range 2 {
		stop()
		head := publish(t, log, fmt.Sprintf("b%d", r), 7) // while nobody serves
		_, stop = revokerAt(t, log, addr)
		next(head)
		next(publish(t, log, fmt.Sprintf("c%d", r), 3))
	}
	stop()
	for i, ev := range kept {
		if ev.GetSequence() != uint64(i+1) {
			t.Fatalf("event %d returned earlier now says sequence %d", i+1, ev.GetSequence())
		}
	}
	if f.Last() != want {
		t.Fatalf("Last = %d, want %d", f.Last(), want)
	}
	if f.Heartbeat().GetEpoch() != log.Epoch() {
		t.Fatalf("heartbeat epoch %q, want %q", f.Heartbeat().GetEpoch(), log.Epoch())
	}
}

// TestNextSharedMatchesNext follows one feed of credential revocations and partner changes with two
// followers, one calling Next and one NextShared: each event must be the same, NextShared must
// reuse its event for consecutive credential revocations, and the strings taken from its events
// must survive the calls after them.
func TestNextSharedMatchesNext(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := revokerAt(t, log, "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var want []string // the target of each event, in order
	for i := range 12 {
		if i%5 == 4 { // another kind of event, which NextShared decodes into a fresh one
			publish(t, log, fmt.Sprintf("p%d", i), 1)
			want = append(want, fmt.Sprintf("p%d-0", i))
			continue
		}
		r := revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: fmt.Sprintf("jti-%d", i),
			Reason: fmt.Sprintf("leaked, case %d", i), Actor: "alice", RequestID: fmt.Sprintf("req-%d", i)}
		if _, err := log.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Target)
	}
	owned := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr)})
	defer owned.Close()
	shared := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr)})
	defer shared.Close()

	var (
		kept   []string // the targets read from NextShared's events, kept across later calls
		prev   *treatyv1.Event
		reused int
	)
	for i := range want {
		a, err := owned.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := shared.NextShared()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a, b) {
			t.Fatalf("event %d:\nNextShared %v\n      Next %v", i+1, b, a)
		}
		if b == prev {
			reused++
		}
		prev = b
		kept = append(kept, b.GetCredentialRevoked().GetJti()+b.GetPartnerChanged().GetPartnerId())
	}
	if !slices.Equal(kept, want) {
		t.Fatalf("targets kept from NextShared's events: %q, want %q", kept, want)
	}
	// Seven pairs of consecutive credential revocations (jti-0..3, 5..8, 10..11).
	if reused != 7 {
		t.Fatalf("NextShared reused its event %d times in a row, want 7", reused)
	}
	if shared.Heartbeat().GetEpoch() != log.Epoch() {
		t.Fatalf("heartbeat epoch %q, want %q", shared.Heartbeat().GetEpoch(), log.Epoch())
	}
}

func TestFollowerDetectsReplacedLog(t *testing.T) {
	old, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := revokerAt(t, fresh, "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr), After: 5, Epoch: old.Epoch()})
	defer f.Close()
	if _, err := f.Next(); !errors.Is(err, subscriber.ErrReplaced) {
		t.Fatalf("err = %v, want ErrReplaced", err)
	}
}

// TestFollowerStopsWithItsContext waits on an idle feed, hearing heartbeats, until ctx ends.
func TestFollowerStopsWithItsContext(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := revokerAt(t, log, "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	beats := 0 // Next calls OnHeartbeat on this goroutine
	f := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr), OnHeartbeat: func(*treatyv1.Heartbeat) { beats++ }})
	time.AfterFunc(500*time.Millisecond, cancel)
	if _, err := f.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if beats == 0 {
		t.Fatal("no heartbeat reached OnHeartbeat while idle")
	}
}

func TestFollowerInvalidFilterIsFinal(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := revokerAt(t, log, "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := subscriber.Follow(ctx, subscriber.Config{Conn: dial(t, addr), Filter: &treatyv1.SubscribeFilter{PartnerIds: []string{"NOT AN ID"}}})
	if _, err := f.Next(); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the revoker's INVALID_ARGUMENT", err)
	}
}

// TestFollowerOutOfRange: a follower behind the log's retention gets ErrOutOfRange, and the
// heartbeats announce the retained boundary.
func TestFollowerOutOfRange(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{MaxCredentialTTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, jti := range []string{"a", "b", "c"} {
		if jti == "c" {
			mu.Lock()
			now = now.Add(48 * time.Hour)
			mu.Unlock()
		}
		if _, err := log.Revoke(ctx, revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: jti, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := log.Compact(ctx); err != nil || n != 2 {
		t.Fatalf("compacted %d, %v", n, err)
	}
	addr, stop := revokerAt(t, log, "127.0.0.1:0")
	defer stop()
	conn := dial(t, addr)

	behind := subscriber.Follow(ctx, subscriber.Config{Conn: conn, After: 1})
	defer behind.Close()
	if _, err := behind.Next(); !errors.Is(err, subscriber.ErrOutOfRange) {
		t.Fatalf("err = %v, want ErrOutOfRange", err)
	}
	f := subscriber.Follow(ctx, subscriber.Config{Conn: conn, After: 2})
	defer f.Close()
	ev, err := f.Next()
	if err != nil || ev.GetSequence() != 3 {
		t.Fatalf("next = %v, %v; want event 3", ev, err)
	}
	if got := f.Heartbeat().GetRetainedAfterSequence(); got != 2 {
		t.Fatalf("heartbeat retained_after_sequence = %d, want 2", got)
	}
}
