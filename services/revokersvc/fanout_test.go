package revokersvc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// server is a revoker served on a loopback listener, for tests that dial many connections.
type server struct {
	log  *revoker.Log
	svc  *revokersvc.Service
	addr string
}

func serve(t *testing.T) *server {
	t.Helper()
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc.Register(srv)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() {
		svc.Close()
		srv.Stop()
		<-served
	})
	return &server{log: log, svc: svc, addr: lis.Addr().String()}
}

func (s *server) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// publishPartners appends n partner changes in one transaction, each with a reason of pad bytes
// (to make events big), and returns the last sequence.
func publishPartners(t *testing.T, log *revoker.Log, prefix string, n, pad int) uint64 {
	t.Helper()
	reason := strings.Repeat("x", pad)
	entries := make([]*treatyv1.PublishEntry, n)
	for i := range entries {
		id := fmt.Sprintf("%s-%d", prefix, i)
		entries[i] = &treatyv1.PublishEntry{RequestId: id, Event: &treatyv1.Event{Reason: reason, Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: id, State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}}
	}
	seqs, err := log.Publish(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	return seqs[len(seqs)-1]
}

// follower reads one stream in a goroutine, checking that events come in order without gaps and
// that no heartbeat announces a head below them, and records how far it got.
type follower struct {
	mu      sync.Mutex
	last    uint64
	err     error
	changed chan struct{} // signalled after every event
}

func follow(t *testing.T, ctx context.Context, client treatyv1.RevocationServiceClient, wg *sync.WaitGroup, opts ...grpc.CallOption) *follower {
	t.Helper()
	stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{changed: make(chan struct{}, 1)}
	wg.Go(func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				if ctx.Err() == nil {
					f.fail(fmt.Errorf("recv after %d: %w", f.position(), err))
				}
				return
			}
			ev := m.GetEvent()
			if ev == nil {
				// A head below what was received would make a follower take the log for replaced.
				if head := m.GetHeartbeat().GetHeadSequence(); head < f.position() {
					f.fail(fmt.Errorf("heartbeat head %d after event %d", head, f.position()))
				}
				continue
			}
			f.mu.Lock()
			if ev.GetSequence() != f.last+1 && f.err == nil {
				f.err = fmt.Errorf("got %d after %d", ev.GetSequence(), f.last)
			}
			f.last = ev.GetSequence()
			f.mu.Unlock()
			select {
			case f.changed <- struct{}{}:
			default:
			}
		}
	})
	return f
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *follower) position() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// waitFor waits until the follower has received seq, or fails the test after a generous timeout.
func (f *follower) waitFor(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		f.mu.Lock()
		last, err := f.last, f.err
		f.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if last >= seq {
			return
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("follower stuck at %d, want %d", last, seq)
		}
	}
}

// TestStuckSubscriberIsCutOff connects 1,000 subscribers, one of which never reads: the other 999
// receive every event in order, and the stuck one, once it reads at last, finds an in-order prefix
// followed by RESOURCE_EXHAUSTED.
func TestStuckSubscriberIsCutOff(t *testing.T) {
	defer revokersvc.SetSubscriberBuffer(64)()
	s := serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// The stuck subscriber has its own connection with default options, as a careless client would.
	stuckCtx, stuckCancel := context.WithTimeout(ctx, 10*time.Minute) // fail, not hang, if never cut (a loaded CI machine with -race needs minutes)
	defer stuckCancel()
	stuck, err := treatyv1.NewRevocationServiceClient(s.dial(t)).Subscribe(stuckCtx, &treatyv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The others share 20 connections (the race detector caps live goroutines near 8,000).
	var followers []*follower
	for c := range 20 {
		client := treatyv1.NewRevocationServiceClient(s.dial(t, revokersvc.FeedDialOptions()...))
		for range 50 {
			if c == 0 && len(followers) == 49 {
				break // 999 in all
			}
			followers = append(followers, follow(t, ctx, client, &wg))
		}
	}
	if len(followers) != 999 {
		t.Fatalf("%d followers", len(followers))
	}
	// More than the stuck stream's flow-control windows (64 KiB each way) and its queue hold: 250
	// events of 1 KiB, published in rounds that the healthy subscribers receive completely before
	// the next.
	var head uint64
	for r := range 25 {
		head = publishPartners(t, s.log, fmt.Sprintf("p%d", r), 10, 1024)
		for _, f := range followers {
			f.waitFor(t, head)
		}
	}
	var last uint64
	for {
		m, err := stuck.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "resubscribe after") {
				t.Fatalf("stuck subscriber ended with %v, want RESOURCE_EXHAUSTED", err)
			}
			break
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != last+1 {
				t.Fatalf("stuck subscriber got %d after %d", ev.GetSequence(), last)
			}
			last = ev.GetSequence()
		}
	}
	if last >= head {
		t.Fatalf("the stuck subscriber received everything (%d of %d); it was never cut off", last, head)
	}
	if st := s.svc.SubscriberStats(); st.CutOff != 1 || st.Connected != 999 {
		t.Errorf("after the cut: %+v, want 1 cut off and 999 connected", st)
	}
	// The healthy ones keep following after the cut.
	head = publishPartners(t, s.log, "after", 5, 0)
	for _, f := range followers {
		f.waitFor(t, head)
	}
	waitSubscribers(t, s.svc, func(subs []revokersvc.SubscriberInfo) bool {
		for _, sub := range subs {
			if sub.Sent != head {
				return false
			}
		}
		return len(subs) == 999
	})
}

// TestLateJoinersSeeEverything subscribes from zero at many moments while the log grows: each
// stream switches from replay to the live fan-out without a gap or a duplicate.
func TestLateJoinersSeeEverything(t *testing.T) {
	s := serve(t)
	client := treatyv1.NewRevocationServiceClient(s.dial(t, revokersvc.FeedDialOptions()...))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var followers []*follower
	var head uint64
	for r := range 40 {
		head = publishPartners(t, s.log, fmt.Sprintf("p%d", r), 1+r%7, 0)
		followers = append(followers, follow(t, ctx, client, &wg))
	}
	head = publishPartners(t, s.log, "last", 3, 0)
	for _, f := range followers {
		f.waitFor(t, head)
	}
}

// TestSharedEncodingSkipsCompressedStreams follows the feed with streams that ask for gzip (the
// server then compresses what it sends them) beside plain ones, one event at a time: each event's
// shared encoding is made by whichever plain stream sends it first and must never be made by a
// compressing stream, whose bytes the plain clients could not read.
func TestSharedEncodingSkipsCompressedStreams(t *testing.T) {
	s := serve(t)
	client := treatyv1.NewRevocationServiceClient(s.dial(t, revokersvc.FeedDialOptions()...))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var followers []*follower
	for i := range 8 {
		var opts []grpc.CallOption
		if i%2 == 0 {
			opts = append(opts, grpc.UseCompressor(gzip.Name))
		}
		followers = append(followers, follow(t, ctx, client, &wg, opts...))
	}
	// Once every stream has the first event, each has at least begun its replay; the thirty
	// after it reach them live, from the fan-out.
	head := publishPartners(t, s.log, "first", 1, 0)
	for _, f := range followers {
		f.waitFor(t, head)
	}
	for i := range 30 {
		head = publishPartners(t, s.log, fmt.Sprintf("p%d", i), 1, 0)
		for _, f := range followers {
			f.waitFor(t, head)
		}
	}
}

// TestResumeExactlyOnce disconnects a subscriber mid-stream while events keep coming and resumes
// after its last sequence: across the two streams it sees every event exactly once.
func TestResumeExactlyOnce(t *testing.T) {
	s := serve(t)
	client := treatyv1.NewRevocationServiceClient(s.dial(t, revokersvc.FeedDialOptions()...))
	const rounds = 60
	writerDone := make(chan uint64)
	go func() {
		var head uint64
		for r := range rounds {
			head = publishPartners(t, s.log, fmt.Sprintf("p%d", r), 5, 0)
		}
		writerDone <- head
	}()

	seen := map[uint64]int{}
	var last uint64
	read := func(after uint64, until func() bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: after})
		if err != nil {
			t.Fatal(err)
		}
		for !until() {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("recv after %d: %v", last, err)
			}
			if ev := m.GetEvent(); ev != nil {
				seen[ev.GetSequence()]++
				last = ev.GetSequence()
			}
		}
	}
	// The first stream ends mid-stream, after some events but (most likely) before the writer
	// ends; correctness does not depend on where.
	read(0, func() bool { return last >= 40 })
	head := <-writerDone
	read(last, func() bool { return last >= head })
	for seq := uint64(1); seq <= head; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("event %d seen %d times", seq, seen[seq])
		}
	}
	if len(seen) != int(head) {
		t.Fatalf("saw %d distinct events, want %d", len(seen), head)
	}
}
