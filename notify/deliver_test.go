package notify_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestDeliverySigned: a notification reaches the receiver signed over its timestamp and body,
// naming the partner and its people, and the delivery log records one successful attempt.
func TestDeliverySigned(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*24*time.Hour))
	n := e.open(t, e.config(nil, rcv.URL))
	run(t, n)

	id, added, err := n.Enqueue(context.Background(), notify.Event{
		Type: notify.TypeTest, PartnerID: "acme", Summary: "hello", Details: map[string]string{"k": "v"},
	})
	if err != nil || !added {
		t.Fatalf("Enqueue = %q, %v, %v", id, added, err)
	}
	got := rcv.waitRequests(t, 1)[0]
	if err := notify.Verify(secret, got.header.Get(notify.HeaderSignature), got.body, time.Now(), 0); err != nil {
		t.Fatalf("the signature does not verify: %v", err)
	}
	if err := notify.Verify([]byte("another-secret-of-enough-bytes"), got.header.Get(notify.HeaderSignature), got.body, time.Now(), 0); !errors.Is(err, notify.ErrBadSignature) {
		t.Fatalf("Verify with another secret = %v, want ErrBadSignature", err)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ev := got.header.Get(notify.HeaderEvent); ev != notify.TypeTest {
		t.Errorf("%s = %q", notify.HeaderEvent, ev)
	}
	body := decode(t, got.body)
	want := notify.Notification{
		ID: id, Type: notify.TypeTest, Time: now, Summary: "hello", Details: map[string]string{"k": "v"},
		Partner: &notify.Partner{ID: "acme", DisplayName: "Partner acme", LegalName: "acme Ltd", State: "active",
			RiskTier: "medium", ContractEnd: now.Add(365 * 24 * time.Hour)},
		Recipients: &notify.Recipients{OwnerTeam: "team-acme", AccountableOwner: "owner@acme.example",
			BackupOwner: "backup@acme.example", SecurityContact: "security@acme.example"},
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	log := waitDeliveries(t, n, notify.StateDelivered, 1)
	d := log[0]
	if d.ID != got.header.Get(notify.HeaderDelivery) || d.NotificationID != id || d.PartnerID != "acme" || d.Type != notify.TypeTest {
		t.Errorf("delivery = %+v, header delivery id %q", d, got.header.Get(notify.HeaderDelivery))
	}
	if d.Endpoint != rcv.srv.URL+"/..." {
		t.Errorf("endpoint = %q, want it redacted to %q", d.Endpoint, rcv.srv.URL+"/...")
	}
	if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 || d.Attempts[0].Error != "" || d.Attempts[0].Time.IsZero() {
		t.Errorf("attempts = %+v, want one 200", d.Attempts)
	}
}

// TestRetryThenSuccess: 500s are retried with backoff under the same delivery id, each attempt
// signed afresh, until the receiver accepts; the log keeps every attempt.
func TestRetryThenSuccess(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	n := e.open(t, e.config(nil, rcv.URL))
	run(t, n)
	if _, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, Summary: "retry me"}); err != nil {
		t.Fatal(err)
	}
	got := rcv.waitRequests(t, 3)
	d := waitDeliveries(t, n, notify.StateDelivered, 1)[0]
	codes := []int{}
	for _, a := range d.Attempts {
		codes = append(codes, a.StatusCode)
	}
	if diff := cmp.Diff([]int{500, 500, 202}, codes); diff != "" {
		t.Fatalf("attempt codes (-want +got):\n%s", diff)
	}
	if !strings.Contains(d.Attempts[0].Error, "500") || d.Attempts[2].Error != "" {
		t.Errorf("attempt errors = %q, %q", d.Attempts[0].Error, d.Attempts[2].Error)
	}
	for i, r := range got {
		if r.header.Get(notify.HeaderDelivery) != d.ID {
			t.Errorf("request %d carries delivery id %q, want %q", i, r.header.Get(notify.HeaderDelivery), d.ID)
		}
		if err := notify.Verify(secret, r.header.Get(notify.HeaderSignature), r.body, time.Now(), 0); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		if i > 0 && string(r.body) != string(got[0].body) {
			t.Errorf("request %d sent another body", i)
		}
	}
	// The waits grow: at least RetryMin/2 (the jitter's floor) between attempts.
	if gap := got[1].at.Sub(got[0].at); gap < 10*time.Millisecond {
		t.Errorf("retried after %v, before the backoff", gap)
	}
}

// TestGiveUp: a receiver that keeps failing gets MaxAttempts attempts, then the delivery is dead
// and nothing more is sent.
func TestGiveUp(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	n := e.open(t, e.config(nil, rcv.URL))
	run(t, n)
	if _, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, Summary: "doomed"}); err != nil {
		t.Fatal(err)
	}
	d := waitDeliveries(t, n, notify.StateDead, 1)[0]
	if len(d.Attempts) != 4 {
		t.Fatalf("%d attempts, want 4 (MaxAttempts)", len(d.Attempts))
	}
	for _, a := range d.Attempts {
		if a.StatusCode != 503 || !strings.Contains(a.Error, "503") {
			t.Errorf("attempt %+v, want a 503", a)
		}
	}
	if !d.NextAttempt.IsZero() {
		t.Errorf("a dead delivery has a next attempt at %v", d.NextAttempt)
	}
	time.Sleep(300 * time.Millisecond) // longer than RetryMax: a live delivery would be tried again
	if got := len(rcv.requests()); got != 4 {
		t.Errorf("the receiver got %d requests, want 4", got)
	}
}

// TestUnreachable: a transport error is recorded without the endpoint's path or query.
func TestUnreachable(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	url := rcv.URL
	rcv.srv.Close() // nobody listens there any more
	cfg := e.config(nil, url)
	cfg.MaxAttempts = 2
	n := e.open(t, cfg)
	run(t, n)
	if _, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, Summary: "nobody home"}); err != nil {
		t.Fatal(err)
	}
	d := waitDeliveries(t, n, notify.StateDead, 1)[0]
	for _, a := range d.Attempts {
		if a.StatusCode != 0 || a.Error == "" || strings.Contains(a.Error, webhookToken) {
			t.Errorf("attempt %+v: want an error without the URL's token", a)
		}
	}
}

// TestDurableAcrossRestart: notifications queued while nothing delivers survive closing the
// store, and are delivered once the notifier runs over the reopened store.
func TestDurableAcrossRestart(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	rcv := newReceiver(t, nil)
	e.partner(t, "acme", now.Add(365*24*time.Hour))
	st, err := store.OpenBolt(e.path, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	n := e.open(t, e.config(st, rcv.URL))
	var ids []string
	for _, s := range []string{"one", "two", "three"} {
		id, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, PartnerID: "acme", Summary: s})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := st.Close(); err != nil { // as a crash after Enqueue returned: it was fsync'd
		t.Fatal(err)
	}

	n = e.open(t, e.config(storetest.OpenBoltAt(t, e.path, notify.Schema), rcv.URL))
	run(t, n)
	got := rcv.waitRequests(t, 3)
	seen := map[string]bool{}
	for _, r := range got {
		seen[decode(t, r.body).ID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("notification %s was not delivered after the restart", id)
		}
	}
	waitDeliveries(t, n, notify.StateDelivered, 3)
}

// TestEndpointRemoved: deliveries queued for an endpoint that is no longer configured are dead,
// not tried; the remaining endpoint still gets new notifications.
func TestEndpointRemoved(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	old, kept := newReceiver(t, nil), newReceiver(t, nil)
	st, err := store.OpenBolt(e.path, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	n := e.open(t, e.config(st, old.URL, kept.URL))
	if _, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, Summary: "before"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	n = e.open(t, e.config(storetest.OpenBoltAt(t, e.path, notify.Schema), kept.URL))
	run(t, n)
	dead := waitDeliveries(t, n, notify.StateDead, 1)
	if len(dead) != 1 || dead[0].Endpoint != old.srv.URL+"/..." || dead[0].Attempts[0].Error != "endpoint no longer configured" {
		t.Errorf("dead deliveries = %+v", dead)
	}
	kept.waitRequests(t, 1)
	if len(old.requests()) != 0 {
		t.Errorf("the removed endpoint got %d requests", len(old.requests()))
	}
}

// TestListDeliveries: newest first, pages, filters, and bad queries.
func TestListDeliveries(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	e.partner(t, "acme", now.Add(365*24*time.Hour))
	// Two endpoints that nobody runs: everything stays pending.
	n := e.open(t, e.config(nil, "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"))
	var ids []string
	for i := range 3 {
		p := ""
		if i == 1 {
			p = "acme"
		}
		id, _, err := n.Enqueue(context.Background(), notify.Event{Type: notify.TypeTest, PartnerID: p, Summary: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var all []notify.Delivery
	token := ""
	for {
		page, next, err := n.ListDeliveries(context.Background(), notify.DeliveryQuery{PageSize: 4, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 6 {
		t.Fatalf("%d deliveries, want 6 (3 notifications x 2 endpoints)", len(all))
	}
	if all[0].NotificationID != ids[2] || all[5].NotificationID != ids[0] {
		t.Errorf("not newest first: %s ... %s", all[0].NotificationID, all[5].NotificationID)
	}
	acme, _, err := n.ListDeliveries(context.Background(), notify.DeliveryQuery{PartnerID: "acme"})
	if err != nil || len(acme) != 2 || acme[0].NotificationID != ids[1] {
		t.Errorf("partner filter = %+v, %v", acme, err)
	}
	if dead, _, err := n.ListDeliveries(context.Background(), notify.DeliveryQuery{State: notify.StateDead}); err != nil || len(dead) != 0 {
		t.Errorf("state filter = %+v, %v", dead, err)
	}
	for _, q := range []notify.DeliveryQuery{{State: "gone"}, {PageSize: -1}, {PageToken: "zz"}, {PageToken: "00"}} {
		if _, _, err := n.ListDeliveries(context.Background(), q); err == nil {
			t.Errorf("ListDeliveries(%+v) succeeded", q)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	st := storetest.OpenBolt(t, notify.Schema)
	for name, edit := range map[string]func(*notify.Config){
		"no store":      func(c *notify.Config) { c.Store = nil },
		"no directory":  func(c *notify.Config) { c.Directory = nil },
		"short secret":  func(c *notify.Config) { c.Secret = []byte("short") },
		"bad scheme":    func(c *notify.Config) { c.Endpoints = []string{"ftp://example.com/" + webhookToken} },
		"relative URL":  func(c *notify.Config) { c.Endpoints = []string{"/hook"} },
		"negative":      func(c *notify.Config) { c.MaxAttempts = -1 },
		"retry inverse": func(c *notify.Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := e.config(st, "https://hooks.example.com/x")
			edit(&cfg)
			_, err := notify.Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), webhookToken) || strings.Contains(err.Error(), string(secret)) {
				t.Errorf("the error quotes a secret: %v", err)
			}
		})
	}
}

// TestRetryDead: once the receiver is fixed, dead deliveries are queued again for a new round
// under the same delivery id; other deliveries cannot be retried.
func TestRetryDead(t *testing.T) {
	e := newEnv(t, revoker.Config{})
	var fixed atomic.Bool
	rcv := newReceiver(t, func(int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	n := e.open(t, e.config(nil, rcv.URL))
	run(t, n)
	ctx := context.Background()
	for _, s := range []string{"one", "two"} {
		if _, _, err := n.Enqueue(ctx, notify.Event{Type: notify.TypeTest, Summary: s}); err != nil {
			t.Fatal(err)
		}
	}
	dead := waitDeliveries(t, n, notify.StateDead, 2)

	if _, err := n.RetryDead(ctx, "dlv_nosuch"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("RetryDead(unknown) = %v, want NotFound", err)
	}
	fixed.Store(true)
	if k, err := n.RetryDead(ctx, dead[0].ID); err != nil || k != 1 {
		t.Fatalf("RetryDead(%s) = %d, %v", dead[0].ID, k, err)
	}
	d := waitDeliveries(t, n, notify.StateDelivered, 1)[0]
	if d.ID != dead[0].ID || len(d.Attempts) != 5 || d.Attempts[4].StatusCode != 200 {
		t.Errorf("retried delivery = %+v, want the same id with 4 failed attempts and a success", d)
	}
	if _, err := n.RetryDead(ctx, d.ID); fail.KindOf(err) != fail.Precondition {
		t.Errorf("RetryDead(delivered) = %v, want Precondition", err)
	}
	if k, err := n.RetryDead(ctx, ""); err != nil || k != 1 {
		t.Fatalf("RetryDead(all) = %d, %v; want the other one", k, err)
	}
	waitDeliveries(t, n, notify.StateDelivered, 2)
	if k, err := n.RetryDead(ctx, ""); err != nil || k != 0 {
		t.Errorf("RetryDead(all) with none dead = %d, %v", k, err)
	}
}
