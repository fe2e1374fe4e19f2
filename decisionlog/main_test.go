package decisionlog_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// open opens a log on a fresh bbolt file; it is closed (and the file checked) at cleanup.
func open(t testing.TB, cfg decisionlog.Config) *decisionlog.Log {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = storetest.OpenBolt(t, decisionlog.Schema)
	}
	l, err := decisionlog.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var (
	granted = []string{pdp.ReasonGranted}
	revoked = []string{pdp.ReasonRevoked}
)

// record hands the log one decision about subject, as the PDP would.
func record(l *decisionlog.Log, n int, subject string, allow bool) {
	req := &pdp.CheckRequest{Token: "eyJ.secret.token", Action: "orders:read", Resource: "https://api.test", RequestID: fmt.Sprintf("req-%d", n)}
	d := &pdp.Decision{
		Allow: allow, Reasons: revoked, DecisionID: testDecisionID(n), Sequence: uint64(100 + n),
		Subject: subject, Partner: "acme", TokenID: fmt.Sprintf("jti-%d", n), PolicyID: "pol-1",
	}
	if allow {
		d.Reasons = granted
	}
	l.Record(*req, *d, time.Duration(n)*time.Microsecond)
}

// eventually waits (generously) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func written(l *decisionlog.Log, n uint64) func() bool {
	return func() bool { return l.Stats().Written >= n }
}

// listAll pages through a query and returns every entry.
func listAll(t *testing.T, l *decisionlog.Log, q decisionlog.Query) []decisionlog.Entry {
	t.Helper()
	var all []decisionlog.Entry
	for pages := 0; ; pages++ {
		page, err := l.List(q)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		all = append(all, page.Entries...)
		if page.NextPageToken == "" {
			return all
		}
		if pages > 10_000 {
			t.Fatal("List never ends")
		}
		q.PageToken = page.NextPageToken
	}
}

// gatedStore is a store.Store whose writes wait at a gate, as on a stuck disk.
type gatedStore struct {
	store.Store
	entered chan struct{} // receives when an Update starts waiting
	gate    chan struct{} // closed to let writes through
}

func (s *gatedStore) Update(fn func(store.Tx) error) error {
	select {
	case <-s.gate:
	default:
		s.entered <- struct{}{}
		<-s.gate
	}
	return s.Store.Update(fn)
}

// testDecisionID is the decision id of test decision n.
func testDecisionID(n int) pdp.DecisionID {
	var id pdp.DecisionID
	binary.BigEndian.PutUint64(id[8:], uint64(n))
	return id
}
