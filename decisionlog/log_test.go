package decisionlog_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestEntryHoldsTheDecisionAndNeverTheToken(t *testing.T) {
	clk := newClock()
	l := open(t, decisionlog.Config{Now: clk.Now})
	record(l, 7, "w1", false)
	eventually(t, "the entry is written", written(l, 1))
	page, err := l.List(decisionlog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := []decisionlog.Entry{{
		Seq: 1, Time: clk.Now(), DecisionID: testDecisionID(7).String(), RequestID: "req-7", Subject: "w1", Partner: "acme",
		CredentialID: "jti-7", Action: "orders:read", Resource: "https://api.test", Allow: false,
		Reasons: []string{pdp.ReasonRevoked}, PolicyID: "pol-1", Latency: 7 * time.Microsecond, Sequence: 107,
	}}
	if diff := cmp.Diff(want, page.Entries); diff != "" {
		t.Fatalf("entries (-want +got):\n%s", diff)
	}
	raw := page.Entries[0].Proto().String()
	if strings.Contains(raw, "secret") {
		t.Fatalf("the stored record holds the token: %s", raw)
	}
}

func TestCloseFlushesAndEntriesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisionlog.db")
	s, err := store.OpenBolt(path, decisionlog.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := decisionlog.Open(decisionlog.Config{Store: s, QueueSize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		record(l, i, "w1", i%2 == 0)
	}
	// No waiting: Close itself must write everything queued.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Written != n || st.Kept != n || st.Omitted() != 0 {
		t.Fatalf("stats after close = %+v, want %d written and kept, none omitted", st, n)
	}
	record(l, n, "w1", false) // after Close: counted, not logged, no panic
	if got := l.Stats().AfterClose; got != 1 {
		t.Fatalf("AfterClose = %d, want 1", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, decisionlog.Config{Store: storetest.OpenBoltAt(t, path, decisionlog.Schema)})
	all := listAll(t, l2, decisionlog.Query{PageSize: decisionlog.MaxPageSize})
	if len(all) != n {
		t.Fatalf("after reopen: %d entries, want %d", len(all), n)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.RequestID != "req-"+strconv.Itoa(i) {
			t.Fatalf("entry %d = seq %d %s, want seq %d req-%d", i, e.Seq, e.RequestID, i+1, i)
		}
	}
	record(l2, n, "w1", false)
	eventually(t, "the new entry is written", written(l2, 1))
	page, _ := l2.List(decisionlog.Query{Subject: "w1", Start: all[n-1].Time})
	if got := page.Entries[len(page.Entries)-1].Seq; got != n+1 {
		t.Fatalf("the first entry after reopen has sequence %d, want %d", got, n+1)
	}
}

func TestSamplingKeepsEveryDenyAndTheShareOfAllows(t *testing.T) {
	tests := []struct {
		name          string
		rate          float64
		allows, kept  int
		denies        int
		wantSampleOut uint64
	}{
		{"every allow by default", 0, 400, 400, 100, 0},
		{"a quarter", 0.25, 1000, 250, 100, 750},
		{"one in a thousand", 0.001, 2500, 2, 10, 2498},
		{"none", decisionlog.KeepNoAllows, 300, 0, 50, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := open(t, decisionlog.Config{AllowSampleRate: tt.rate, QueueSize: 10_000})
			var wg sync.WaitGroup
			for w := range 4 { // from parallel callers, as on the PDP
				wg.Go(func() {
					for i := w; i < tt.allows+tt.denies; i += 4 {
						record(l, i, "w1", i < tt.allows)
					}
				})
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			st := l.Stats()
			if st.SampledOut != tt.wantSampleOut || st.Kept != uint64(tt.kept+tt.denies) || st.Shed != 0 {
				t.Fatalf("stats = %+v, want %d sampled out, %d kept, none shed", st, tt.wantSampleOut, tt.kept+tt.denies)
			}
			var allows, denies int
			for _, e := range listAll(t, l, decisionlog.Query{PageSize: decisionlog.MaxPageSize}) {
				if e.Allow {
					allows++
				} else {
					denies++
				}
			}
			if allows != tt.kept || denies != tt.denies {
				t.Fatalf("logged %d allows and %d denies, want %d and %d", allows, denies, tt.kept, tt.denies)
			}
		})
	}
}

// TestAllowBoundPerSecond floods the log with allows and denies from parallel callers over three
// seconds of its clock: each second keeps at most the bound of allows (after sampling), every
// deny is kept, and every allow left out is counted.
func TestAllowBoundPerSecond(t *testing.T) {
	tests := []struct {
		name           string
		rate           float64
		bound          int
		allows, denies int // a second
		wantAllows     int // kept a second
	}{
		{"bound reached", 0, 50, 400, 30, 50},
		{"bound not reached", 0, 500, 400, 30, 400},
		{"after sampling", 0.25, 80, 400, 30, 80},
		{"sampling under the bound", 0.1, 80, 400, 30, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			l := open(t, decisionlog.Config{AllowSampleRate: tt.rate, MaxAllowsPerSecond: tt.bound, Now: clk.Now, QueueSize: 10_000})
			const seconds = 3
			for range seconds {
				var wg sync.WaitGroup
				for w := range 4 {
					wg.Go(func() {
						for i := w; i < tt.allows+tt.denies; i += 4 {
							record(l, i, "w1", i < tt.allows)
						}
					})
				}
				wg.Wait()
				clk.Advance(time.Second)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			st := l.Stats()
			if want := uint64(seconds * (tt.wantAllows + tt.denies)); st.Kept != want {
				t.Fatalf("kept %d, want %d (stats %+v)", st.Kept, want, st)
			}
			if omitted := st.SampledOut + st.Capped; omitted != uint64(seconds*(tt.allows-tt.wantAllows)) {
				t.Fatalf("%d allows sampled out and %d capped, want %d left out in all", st.SampledOut, st.Capped, seconds*(tt.allows-tt.wantAllows))
			}
			perSecond := map[int64][2]int{}
			for _, e := range listAll(t, l, decisionlog.Query{PageSize: decisionlog.MaxPageSize}) {
				n := perSecond[e.Time.Unix()]
				if e.Allow {
					n[0]++
				} else {
					n[1]++
				}
				perSecond[e.Time.Unix()] = n
			}
			if len(perSecond) != seconds {
				t.Fatalf("entries in %d seconds, want %d", len(perSecond), seconds)
			}
			for sec, n := range perSecond {
				if n != [2]int{tt.wantAllows, tt.denies} {
					t.Errorf("second %d: %d allows and %d denies logged, want %d and %d", sec, n[0], n[1], tt.wantAllows, tt.denies)
				}
			}
		})
	}
}

func TestBackpressureWaitsForDeniesAndShedsAllows(t *testing.T) {
	gs := &gatedStore{Store: storetest.OpenBolt(t, decisionlog.Schema), entered: make(chan struct{}, 100), gate: make(chan struct{})}
	l := open(t, decisionlog.Config{Store: gs, QueueSize: 4, BatchSize: 1, MaxDenyWait: -1}) // no bound
	record(l, 0, "w1", false)
	select {
	case <-gs.entered: // the writer holds deny 0 and is stuck on the disk
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never tried to write")
	}
	for i := 1; i <= 4; i++ {
		record(l, i, "w1", false) // fills the queue without waiting
	}
	if st := l.Stats(); st.Waited != 0 {
		t.Fatalf("Waited = %d before the queue was full", st.Waited)
	}
	record(l, 5, "w1", true) // an allow never waits: it is shed, and counted
	if st := l.Stats(); st.Shed != 1 || st.Omitted() != 1 {
		t.Fatalf("stats = %+v, want one allow shed", st)
	}
	returned := make(chan struct{})
	go func() { defer close(returned); record(l, 6, "w1", false) }()
	eventually(t, "the deny waits", func() bool { return l.Stats().Waited == 1 })
	select {
	case <-returned:
		t.Fatal("Record returned a deny while the queue was full: it was not waited for")
	case <-time.After(50 * time.Millisecond):
	}
	close(gs.gate) // the disk recovers
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting deny was never taken")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for _, e := range listAll(t, l, decisionlog.Query{}) {
		seqs = append(seqs, e.RequestID)
	}
	if diff := cmp.Diff([]string{"req-0", "req-1", "req-2", "req-3", "req-4", "req-6"}, seqs); diff != "" {
		t.Fatalf("logged requests (-want +got):\n%s", diff)
	}
}

// TestDenyWaitIsBounded: a deny waits for room in a full queue for MaxDenyWait, then is answered
// without an entry, counted and reported, so that a stuck disk holds no decision for longer.
func TestDenyWaitIsBounded(t *testing.T) {
	gs := &gatedStore{Store: storetest.OpenBolt(t, decisionlog.Schema), entered: make(chan struct{}, 100), gate: make(chan struct{})}
	var logs bytes.Buffer
	const maxWait = 50 * time.Millisecond
	l := open(t, decisionlog.Config{Store: gs, QueueSize: 1, BatchSize: 1, MaxDenyWait: maxWait,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	record(l, 0, "w1", false)
	select {
	case <-gs.entered: // the writer holds deny 0 and is stuck on the disk
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never tried to write")
	}
	record(l, 1, "w1", false) // fills the queue
	returned := make(chan struct{})
	start := time.Now()
	go func() { defer close(returned); record(l, 2, "w1", false) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("a deny waited for a stuck disk for 10s; MaxDenyWait is 50ms")
	}
	if waited := time.Since(start); waited < maxWait {
		t.Errorf("the deny was left out after %v, before MaxDenyWait (%v)", waited, maxWait)
	}
	if st := l.Stats(); st.Waited != 1 || st.Unlogged != 1 || st.Omitted() != 1 {
		t.Fatalf("stats = %+v, want one deny waited for and answered unlogged", st)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "unlogged_denies=1") {
		t.Errorf("want one error report counting the unlogged deny, got:\n%s", logs.String())
	}
	close(gs.gate) // the disk recovers: what was queued is written, the unlogged deny is not
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	assertRequests(t, l, decisionlog.Query{}, "req-0", "req-1")
}

func TestRetention(t *testing.T) {
	t.Run("max records", func(t *testing.T) {
		l := open(t, decisionlog.Config{MaxRecords: 3, RetentionInterval: 10 * time.Millisecond})
		for i := range 10 {
			record(l, i, "w"+strconv.Itoa(i%2), false)
		}
		eventually(t, "retention keeps the newest 3", func() bool {
			return l.Stats().Deleted == 7
		})
		assertRequests(t, l, decisionlog.Query{}, "req-7", "req-8", "req-9")
		assertRequests(t, l, decisionlog.Query{Subject: "w0"}, "req-8")
		assertRequests(t, l, decisionlog.Query{Subject: "w1"}, "req-7", "req-9")
	})
	t.Run("max age", func(t *testing.T) {
		clk := newClock()
		l := open(t, decisionlog.Config{Now: clk.Now, MaxAge: time.Hour, RetentionInterval: 10 * time.Millisecond})
		for i := range 5 {
			record(l, i, "w1", false)
		}
		eventually(t, "the old entries are written", written(l, 5))
		clk.Advance(2 * time.Hour)
		record(l, 5, "w1", false)
		record(l, 6, "w1", false)
		eventually(t, "retention removes entries older than an hour", func() bool { return l.Stats().Deleted == 5 })
		// Retention may run before the writer commits the two new ones (waiting out the commit
		// interval), so wait for them too.
		eventually(t, "the new entries are written", written(l, 7))
		assertRequests(t, l, decisionlog.Query{}, "req-5", "req-6")
		assertRequests(t, l, decisionlog.Query{Subject: "w1"}, "req-5", "req-6")
	})
}

func assertRequests(t *testing.T, l *decisionlog.Log, q decisionlog.Query, want ...string) {
	t.Helper()
	got := []string{}
	for _, e := range listAll(t, l, q) {
		got = append(got, e.RequestID)
	}
	if want == nil {
		want = []string{}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("List(%+v) request ids (-want +got):\n%s", q, diff)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	// The writer is held in its first write, as on a slow disk, so that what is measured is Record
	// alone: testing.AllocsPerRun counts every allocation in the process, the writer's too.
	gs := &gatedStore{Store: storetest.OpenBolt(t, decisionlog.Schema), entered: make(chan struct{}, 100), gate: make(chan struct{})}
	l := open(t, decisionlog.Config{Store: gs, AllowSampleRate: 0.5, QueueSize: 10_000})
	t.Cleanup(func() { close(gs.gate) }) // runs before the log's Close, which flushes
	req := pdp.CheckRequest{Token: "eyJ.token", Action: "orders:read", Resource: "https://api.test", RequestID: "req-1"}
	deny := pdp.Decision{Allow: false, Reasons: granted, DecisionID: testDecisionID(1), Subject: "w1", Partner: "acme", TokenID: "jti-1"}
	l.Record(req, deny, time.Microsecond)
	<-gs.entered
	for _, allow := range []bool{true, false} {
		d := deny
		d.Allow = allow
		if n := testing.AllocsPerRun(1000, func() { l.Record(req, d, time.Microsecond) }); n != 0 {
			t.Errorf("Record(allow=%v) allocates %v times per call, want 0", allow, n)
		}
	}
}

// countingStore counts the transactions that write.
type countingStore struct {
	store.Store
	updates atomic.Int64
}

func (s *countingStore) Update(fn func(store.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(fn)
}

func TestCommitsGatherTheDecisionsOfAnInterval(t *testing.T) {
	cs := &countingStore{Store: storetest.OpenBolt(t, decisionlog.Schema)}
	l := open(t, decisionlog.Config{Store: cs, CommitInterval: time.Hour, RetentionInterval: time.Hour, MaxAge: -1, MaxRecords: -1})
	record(l, 0, "w1", false) // after a quiet spell: committed at once
	eventually(t, "the first decision is written", written(l, 1))
	for i := 1; i <= 50; i++ {
		record(l, i, "w1", false) // within the interval: they wait for the next commit
	}
	time.Sleep(50 * time.Millisecond)
	if st := l.Stats(); st.Written != 1 {
		t.Fatalf("Written = %d within the interval, want 1", st.Written)
	}
	if err := l.Close(); err != nil { // Close does not wait for the interval
		t.Fatal(err)
	}
	if st := l.Stats(); st.Written != 51 {
		t.Fatalf("Written = %d after Close, want 51", st.Written)
	}
	if n := cs.updates.Load(); n != 2 {
		t.Fatalf("%d write transactions, want 2: one for the first decision, one for the 50 after", n)
	}
}
