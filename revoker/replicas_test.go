package revoker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// replica is one revoker replica: its own etcd client, store and log on the shared prefix, and
// its follower running.
type replica struct {
	st   *etcdstore.Store
	log  *revoker.Log
	stop func() // stops following and closes the store, as a killed process would
}

func openReplica(t *testing.T, c *etcdtest.Cluster, prefix string) *replica {
	t.Helper()
	st, err := etcdstore.Open(c.Client(), prefix, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.RunCompaction(ctx) // follows the other replicas too: the server runs only this
	}()
	var once sync.Once
	r := &replica{st: st, log: l, stop: func() {
		once.Do(func() {
			st.Close()
			cancel()
			<-done
		})
	}}
	t.Cleanup(r.stop)
	return r
}

// tail reads l from after the way a Subscribe stream does (Changed, then Read), until it has
// read through until or ctx ends, and checks that every event follows the one before it.
func tail(ctx context.Context, l *revoker.Log, after, until uint64) ([]*treatyv1.Event, error) {
	var got []*treatyv1.Event
	for after < until {
		changed := l.Changed()
		evs, err := l.Read(after, 256)
		if err != nil {
			return got, err
		}
		for _, ev := range evs {
			if ev.GetSequence() != after+1 {
				return got, fmt.Errorf("read %d after %d: a gap or a duplicate", ev.GetSequence(), after)
			}
			got = append(got, ev)
			after++
		}
		if len(evs) == 0 {
			select {
			case <-changed:
			case <-ctx.Done():
				return got, fmt.Errorf("stopped at %d of %d: %w", after, until, ctx.Err())
			}
		}
	}
	return got, nil
}

// storedEvents returns every event in st, in order.
func storedEvents(t *testing.T, st store.Store) []*treatyv1.Event {
	t.Helper()
	var out []*treatyv1.Event
	err := st.View(func(tx store.Tx) error {
		return tx.Scan("events", nil, nil, func(_, v []byte) (bool, error) {
			ev := new(treatyv1.Event)
			out = append(out, ev)
			return true, proto.Unmarshal(v, ev)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func storedState(t *testing.T, st store.Store) *feed.State {
	t.Helper()
	var s *feed.State
	err := st.View(func(tx store.Tx) (err error) {
		s, err = feed.Load(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var stateOrder = protocmp.SortRepeated(func(a, b *treatyv1.RevokedCredential) bool { return a.GetJti() < b.GetJti() })

// waitHead waits until every log has reached head.
func waitHead(t *testing.T, head uint64, logs ...*revoker.Log) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, l := range logs {
		for l.Head() < head {
			if time.Now().After(deadline) {
				t.Fatalf("a replica is at %d, not %d, after 20 s", l.Head(), head)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestReplicas: two revoker replicas on one etcd prefix, revoking concurrently through both, hand
// out every sequence once and without gaps; both end with the store's state and events; a reader
// of one replica sees every event appended through the other, in order; a request id sent to both
// gets one sequence.
func TestReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b := openReplica(t, c, "/treaty/revoker"), openReplica(t, c, "/treaty/revoker")
	if a.log.Epoch() != b.log.Epoch() {
		t.Fatalf("replicas have epochs %s and %s", a.log.Epoch(), b.log.Epoch())
	}

	const workers, each = 8, 40 // per replica
	const total = 2 * workers * each
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type tailed struct {
		evs []*treatyv1.Event
		err error
	}
	onB := make(chan tailed, 1)
	go func() {
		evs, err := tail(ctx, b.log, 0, total)
		onB <- tailed{evs, err}
	}()

	var mu sync.Mutex
	seqs := map[uint64]string{}
	var wg sync.WaitGroup
	for ri, r := range []*replica{a, b} {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					jti := fmt.Sprintf("jti-%d-%d-%d", ri, w, i)
					out, err := r.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: jti, Reason: "replicas"})
					if err != nil {
						t.Errorf("revoke %s: %v", jti, err)
						return
					}
					mu.Lock()
					if other, dup := seqs[out.Sequence]; dup {
						t.Errorf("sequence %d acknowledged twice: %s and %s", out.Sequence, other, jti)
					}
					seqs[out.Sequence] = jti
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for seq := uint64(1); seq <= total; seq++ {
		if _, ok := seqs[seq]; !ok {
			t.Fatalf("sequence %d was never acknowledged (%d acknowledgements)", seq, len(seqs))
		}
	}

	got := <-onB
	if got.err != nil {
		t.Fatalf("reader of replica b: %v", got.err)
	}
	for _, ev := range got.evs {
		if want := seqs[ev.GetSequence()]; ev.GetCredentialRevoked().GetJti() != want {
			t.Fatalf("event %d on b revokes %s; %s was acknowledged there", ev.GetSequence(), ev.GetCredentialRevoked().GetJti(), want)
		}
	}

	waitHead(t, total, a.log, b.log)
	stored := storedEvents(t, a.st)
	if len(stored) != total {
		t.Fatalf("the store holds %d events, want %d", len(stored), total)
	}
	want := storedState(t, a.st).Proto()
	for name, r := range map[string]*replica{"a": a, "b": b} {
		evs, err := r.log.Read(0, 2*total)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(stored, evs, protocmp.Transform()); diff != "" {
			t.Errorf("replica %s's Read differs from the store (-store +read):\n%s", name, diff)
		}
		if diff := cmp.Diff(want, r.log.State().Proto(), protocmp.Transform(), stateOrder); diff != "" {
			t.Errorf("replica %s's State differs from the store's (-store +state):\n%s", name, diff)
		}
	}

	// One request id sent to both replicas at once gets one sequence.
	for i := range 5 {
		r := revoker.Request{Kind: credentialK, Target: fmt.Sprintf("jti-dup-%d", i), Reason: "retry", RequestID: fmt.Sprintf("req-%d", i)}
		var outs [2]revoker.Outcome
		var errs [2]error
		var wg sync.WaitGroup
		for j, rep := range []*replica{a, b} {
			wg.Go(func() { outs[j], errs[j] = rep.log.Revoke(ctx, r) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("revoke %s through both: %v, %v", r.RequestID, errs[0], errs[1])
		}
		if outs[0].Sequence != outs[1].Sequence || outs[0].AlreadyApplied == outs[1].AlreadyApplied {
			t.Fatalf("request %s through both replicas: %+v and %+v; want one sequence, appended once", r.RequestID, outs[0], outs[1])
		}
	}
	if n := len(storedEvents(t, a.st)); n != total+5 {
		t.Fatalf("the store holds %d events, want %d", n, total+5)
	}

	// An idle replica's readers see another's appends: b appends nothing and learns of a's
	// revocation by following.
	out, err := a.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: "jti-idle", Reason: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	evs, err := tail(tctx, b.log, out.Sequence-1, out.Sequence)
	if err != nil || evs[0].GetCredentialRevoked().GetJti() != "jti-idle" {
		t.Fatalf("idle replica b after a's revocation %d: %v, %v", out.Sequence, evs, err)
	}
}

// TestReplicaKilled: a replica is killed mid-load; a reader that followed it resumes on the other
// replica after the last sequence it read, and reads every acknowledged revocation, in order, with
// nothing lost or repeated.
func TestReplicaKilled(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b := openReplica(t, c, "/treaty/revoker"), openReplica(t, c, "/treaty/revoker")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The reader follows a until a dies.
	readCtx, stopReading := context.WithCancel(ctx)
	read := make(chan []*treatyv1.Event, 1)
	go func() {
		evs, _ := tail(readCtx, a.log, 0, ^uint64(0))
		read <- evs
	}()

	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	load := func(r *replica, name string, n int) {
		for w := range 4 {
			wg.Go(func() {
				for i := range n {
					jti := fmt.Sprintf("jti-%s-%d-%d", name, w, i)
					out, err := r.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: jti, Reason: "load"})
					if err != nil {
						if r == a {
							return // killed: what was not acknowledged may or may not be there
						}
						t.Errorf("revoke %s through the survivor: %v", jti, err)
						return
					}
					mu.Lock()
					acked[jti] = out.Sequence
					mu.Unlock()
				}
			})
		}
	}
	load(a, "a", 1000)
	load(b, "b", 60)
	// Kill a once it has appended some of its load.
	for a.log.Head() < 100 {
		time.Sleep(time.Millisecond)
	}
	a.stop()
	killedAt := a.log.Head()
	wg.Wait()
	stopReading()
	before := <-read
	last := uint64(len(before))
	if last == 0 {
		t.Fatal("the reader read nothing from a before it died")
	}

	// Resume on b after the last sequence read from a, through the store's head (b learns of
	// a's last appends by following).
	stored := storedEvents(t, b.st)
	waitHead(t, uint64(len(stored)), b.log)
	after, err := tail(ctx, b.log, last, uint64(len(stored)))
	if err != nil {
		t.Fatalf("resume on b after %d: %v", last, err)
	}
	all := append(before, after...)
	if diff := cmp.Diff(stored, all, protocmp.Transform()); diff != "" {
		t.Fatalf("what the reader read across both replicas differs from the store (-store +read):\n%s", diff)
	}
	bySeq := map[uint64]string{}
	for _, ev := range all {
		bySeq[ev.GetSequence()] = ev.GetCredentialRevoked().GetJti()
	}
	for jti, seq := range acked {
		if bySeq[seq] != jti {
			t.Fatalf("%s was acknowledged at %d, where the reader read %q", jti, seq, bySeq[seq])
		}
	}
	t.Logf("a killed at head %d; the reader read %d events from a and %d from b; %d acknowledged", killedAt, last, len(after), len(acked))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}

// TestReplicaAfterReepoch: a log restored under a new epoch while a replica runs is never
// appended to from that replica's old memory: its appends fail as unavailable, and keep failing
// once it has noticed the new epoch, until it is restarted.
func TestReplicaAfterReepoch(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openReplica(t, c, "/treaty/revoker")
	ctx := context.Background()
	if _, err := a.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: "jti-1", Reason: "before"}); err != nil {
		t.Fatal(err)
	}
	restore, err := etcdstore.Open(c.Client(), "/treaty/revoker", revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer restore.Close()
	if _, _, err := revoker.Reepoch(restore); err != nil {
		t.Fatal(err)
	}
	for range 2 { // before and after it noticed
		_, err := a.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: "jti-2", Reason: "after"})
		if fail.KindOf(err) != fail.Unavailable {
			t.Fatalf("revoke through the replica of the old epoch: %v, want unavailable", err)
		}
		_ = a.log.CatchUp()
	}
	if got := storedState(t, restore).Epoch(); got == a.log.Epoch() {
		t.Fatalf("the stored state went back to the old epoch %s", got)
	}
	b := openReplica(t, c, "/treaty/revoker") // a restarted replica
	if _, err := b.log.Revoke(ctx, revoker.Request{Kind: credentialK, Target: "jti-2", Reason: "after"}); err != nil {
		t.Fatalf("revoke through a restarted replica: %v", err)
	}
}

// TestReplicaBehindCompaction: a replica that fell behind another's compaction (its next events
// are gone) reloads the state saved beside the log, takes in the new retention, answers
// OUT_OF_RANGE for what was compacted, and appends after the head.
func TestReplicaBehindCompaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	var mu sync.Mutex
	clock := now
	cfg := revoker.Config{MaxCredentialTTL: time.Hour, RetentionMargin: time.Hour, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}}
	open := func() (*etcdstore.Store, *revoker.Log) {
		st, err := etcdstore.Open(c.Client(), "/treaty/revoker", revoker.Schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, err := revoker.Open(st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st, l
	}
	ctx := context.Background()
	revoke := func(l *revoker.Log, jti string) uint64 {
		t.Helper()
		out, err := l.Revoke(ctx, revoker.Request{Kind: credentialK, Target: jti, Reason: "old"})
		if err != nil {
			t.Fatal(err)
		}
		return out.Sequence
	}
	stA, a := open()
	_, b := open() // not following: it falls behind
	revoke(b, "jti-b")
	for i := range 10 {
		revoke(a, fmt.Sprintf("jti-a-%d", i))
	}
	mu.Lock()
	clock = clock.Add(3 * time.Hour) // everything so far is past retention, and has expired
	mu.Unlock()
	head := revoke(a, "jti-new")
	if n, err := a.Compact(ctx); err != nil || n != 11 {
		t.Fatalf("compact: %d, %v; want the 11 events before the newest", n, err)
	}
	if err := b.CatchUp(); err != nil {
		t.Fatal(err)
	}
	if b.Head() != head || b.RetainedAfter() != a.RetainedAfter() {
		t.Fatalf("b is at %d retaining after %d; a at %d retaining after %d", b.Head(), b.RetainedAfter(), a.Head(), a.RetainedAfter())
	}
	if diff := cmp.Diff(storedState(t, stA).Proto(), b.State().Proto(), protocmp.Transform(), stateOrder); diff != "" {
		t.Fatalf("b's state after reloading differs from the store's (-store +b):\n%s", diff)
	}
	if _, err := b.Read(1, 10); fail.KindOf(err) != fail.OutOfRange {
		t.Fatalf("b.Read(1) of a compacted event: %v, want OUT_OF_RANGE", err)
	}
	if evs, err := b.Read(head-1, 10); err != nil || len(evs) != 1 || evs[0].GetSequence() != head {
		t.Fatalf("b.Read(%d) = %v, %v; want the newest event", head-1, evs, err)
	}
	if seq := revoke(b, "jti-b-2"); seq != head+1 {
		t.Fatalf("b appended at %d, want %d", seq, head+1)
	}

	// A compaction that forgets expired credentials saves the state, so it first takes in what
	// the other replica appended (else it would save b's older state over a's).
	late := revoke(a, "jti-a-late")
	mu.Lock()
	clock = clock.Add(3 * time.Hour)
	mu.Unlock()
	if _, err := b.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Head() != late {
		t.Fatalf("b compacted at head %d, behind a's %d", b.Head(), late)
	}
	if diff := cmp.Diff(storedState(t, stA).Proto(), b.State().Proto(), protocmp.Transform(), stateOrder); diff != "" {
		t.Fatalf("b's state after compacting differs from the store's (-store +b):\n%s", diff)
	}
	if got := storedState(t, stA).Sequence(); got != late {
		t.Fatalf("the stored state is at %d, want %d", got, late)
	}
}

// TestCompactionWithinEtcdLimits: a compaction of a large backlog (events with request ids, and
// as many expired denylist entries) runs in transactions etcd accepts at the limit Treaty requires
// of it (etcdstore.RequiredTxnOps). With chunks of 4,096 events and every expired entry forgotten
// at once, each transaction was refused whole and the backlog never shrank.
func TestCompactionWithinEtcdLimits(t *testing.T) {
	c := etcdtest.Start(t, 1)
	clk := &clock{t: now}
	st, err := etcdstore.Open(c.Client(), "/treaty/revoker", revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := revoker.Open(st, revoker.Config{MaxCredentialTTL: time.Hour, RetentionMargin: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 6000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 128 {
		wg.Go(func() {
			for i := range work {
				r := req(credentialK, fmt.Sprintf("jti-%d", i))
				r.RequestID = fmt.Sprintf("r-%d", i)
				if _, err := l.Revoke(ctx, r); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Hour)
	if _, err := l.Revoke(ctx, req(credentialK, "fresh")); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Compact(ctx); err != nil || got != n {
		t.Fatalf("compacted %d events (%v), want %d", got, err, n)
	}
	if _, _, _, _, revoked := storedState(t, st).Counts(); revoked != 1 {
		t.Fatalf("%d denylist entries stored after compaction, want 1 (the fresh one)", revoked)
	}
	if _, _, _, _, revoked := l.State().Counts(); revoked != 1 {
		t.Fatalf("%d denylist entries in memory after compaction, want 1", revoked)
	}
}
