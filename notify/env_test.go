package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// now is the registry's and the notifier's clock; contract ends are set relative to it.
var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// secret signs every delivery in these tests; it must never appear in a log.
var secret = []byte("s3cret-webhook-signing-key-0123456789")

// webhookToken is in the receiver's URL path, as Slack-style webhooks carry one; it must never
// appear in a log or the delivery log either.
const webhookToken = "T0KEN-in-the-path-9f8e7d"

// received is one request the receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server standing for a webhook receiver. answer picks the status of the
// n-th request (from 1); nil answers 200.
type receiver struct {
	srv *httptest.Server
	URL string

	mu     sync.Mutex
	got    []received
	answer func(n int) int
	more   chan struct{}
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	r := &receiver{answer: answer, more: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		n := len(r.got)
		answer := r.answer
		r.mu.Unlock()
		code := http.StatusOK
		if answer != nil {
			code = answer(n)
		}
		w.WriteHeader(code)
		io.WriteString(w, string(body)) // an echoing receiver: its answer must not reach the logs
		r.more <- struct{}{}
	}))
	r.URL = r.srv.URL + "/hooks/" + webhookToken + "?key=" + webhookToken
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitRequests waits (up to 15 s) until the receiver got at least n requests.
func (r *receiver) waitRequests(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("the receiver got %d requests after 15s, want %d", len(r.requests()), n)
		}
	}
}

// env is a real revoker, a registry publishing into it, and a notifier's store.
type env struct {
	rev    *revoker.Log
	reg    *registry.Registry
	path   string // the notifier's store
	logs   *logtest.Buffer
	logger *slog.Logger
	mu     sync.Mutex
	at     time.Time // the clock; set with setClock
}

// clock is the registry's and the notifier's clock.
func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.at
}

// setClock moves the clock to t.
func (e *env) setClock(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.at = t
}

func newEnv(t *testing.T, rcfg revoker.Config) *env {
	t.Helper()
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), rcfg)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	quiet := slog.New(slog.DiscardHandler)
	relay := outbox.NewRelay(st, rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{rev: rev, path: filepath.Join(t.TempDir(), "notify.db"), logs: &logtest.Buffer{}}
	e.at = now
	e.reg, err = registry.New(registry.Config{Store: st, Relay: relay, Now: e.clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() { checkLogs(t, e.logs.String()) })
	return e
}

// checkLogs fails the test if the secret, the webhook's token or a notification body is logged.
func checkLogs(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{string(secret), webhookToken, `"summary"`, "recipients", "security@"} {
		if strings.Contains(out, bad) {
			t.Errorf("the logs contain %q:\n%s", bad, out)
		}
	}
}

// partner creates an active partner with its people recorded, contract ending at end.
func (e *env) partner(t *testing.T, id string, end time.Time) registry.Partner {
	t.Helper()
	p, _, err := e.reg.CreatePartner(context.Background(), registry.Partner{
		ID: id, DisplayName: "Partner " + id, LegalName: id + " Ltd", OwnerTeam: "team-" + id, ContractEnd: end,
		AccountableOwner: "owner@" + id + ".example", BackupOwner: "backup@" + id + ".example",
		SecurityContact: "security@" + id + ".example",
	}, "alice", registry.CreateOptions{Activate: true, ApprovedBy: "test"})
	if err != nil {
		t.Fatalf("create partner %s: %v", id, err)
	}
	return p
}

func (e *env) integration(t *testing.T, id, partnerID string) {
	t.Helper()
	_, _, err := e.reg.CreateIntegration(context.Background(), registry.Integration{
		ID: id, PartnerID: partnerID, AllowedScopes: []string{"orders:read"}, Audiences: []string{"https://api.example.com"},
		MaxTTL: 15 * time.Minute, Environment: "production",
	}, "alice", registry.CreateOptions{Activate: true, ApprovedBy: "test"})
	if err != nil {
		t.Fatalf("create integration %s: %v", id, err)
	}
}

// config is a notifier configuration over st posting to urls with fast retries.
func (e *env) config(st store.Store, urls ...string) notify.Config {
	return notify.Config{
		Store: st, Endpoints: urls, Secret: secret, Directory: e.reg,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxAttempts: 4,
		AuditPollInterval: 20 * time.Millisecond, Now: e.clock, Logger: e.logger,
	}
}

// open opens a notifier over a fresh store in the test's folder.
func (e *env) open(t *testing.T, cfg notify.Config) *notify.Notifier {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = storetest.OpenBoltAt(t, e.path, notify.Schema)
	}
	n, err := notify.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("notify.Open: %v", err)
	}
	return n
}

// run runs n until the test ends.
func run(t *testing.T, n *notify.Notifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// decode parses a delivered body.
func decode(t *testing.T, body []byte) notify.Notification {
	t.Helper()
	var got notify.Notification
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return got
}

// waitDeliveries waits (up to 15 s) until the delivery log holds n deliveries in state.
func waitDeliveries(t *testing.T, n *notify.Notifier, state string, want int) []notify.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, _, err := n.ListDeliveries(context.Background(), notify.DeliveryQuery{State: state})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s deliveries after 15s, want %d", len(got), state, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
