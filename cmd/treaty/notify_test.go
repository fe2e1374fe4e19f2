package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/notifysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// notifyServer runs a notifier beside a real registry and revoker, posting to the given
// endpoints, and serves NotifyService on loopback; it returns the address.
func notifyServer(t *testing.T, endpoints ...string) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.Open(context.Background(), notify.Config{
		Store: storetest.OpenBolt(t, notify.Schema), Directory: reg, Secret: []byte("cli-test-secret-0123456789"), Endpoints: endpoints,
		MaxAttempts: 2, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { relay.Run(ctx); done <- struct{}{} }()
	go func() { n.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return grpctest.Serve(t, notifysvc.New(notifysvc.Config{Notifier: n, Logger: quiet}).Register).Target()
}

func TestNotifyTestAndDeliveries(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	addr := notifyServer(t, ok.URL+"/hook/T0KEN")
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	code, out, errOut := cli("notify", "test", "--wait")
	if code != exitOK || !strings.Contains(out, "queued for "+ok.URL+"/...") || !strings.Contains(out, "delivered after 1 attempt(s) (200)") {
		t.Fatalf("notify test: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("notify", "deliveries")
	if code != exitOK || !strings.Contains(out, "DELIVERY") || !strings.Contains(out, "test") || !strings.Contains(out, "delivered") ||
		strings.Contains(out, "T0KEN") {
		t.Fatalf("notify deliveries: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("notify", "deliveries", "--state", "delivered", "-o", "json")
	var got struct {
		Deliveries []struct {
			Type     string `json:"type"`
			State    string `json:"state"`
			Attempts []struct {
				StatusCode int `json:"status_code"`
			} `json:"attempts"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got.Deliveries) != 1 ||
		got.Deliveries[0].State != "DELIVERY_STATE_DELIVERED" || got.Deliveries[0].Attempts[0].StatusCode != 200 {
		t.Fatalf("notify deliveries -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if code, out, _ := cli("notify", "deliveries", "--state", "dead"); code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("no dead deliveries: exit %d\n%s", code, out)
	}
	for _, bad := range [][]string{
		{"notify", "deliveries", "--state", "lost"},
		{"notify", "deliveries", "--partner", "Not An Id"},
		{"notify", "deliveries", "--limit", "-1"},
		{"notify", "deliveries", "extra"},
		{"notify", "test", "extra"},
	} {
		if code, out, errOut := cli(bad...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s%s", bad, code, exitUsage, out, errOut)
		}
	}
}

func TestNotifyTestFails(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer broken.Close()
	addr := notifyServer(t, broken.URL)
	code, out, errOut := treaty(t, "notify", "test", "--wait", "--registry", addr)
	if code != exitError || !strings.Contains(out, "dead after 2 attempt(s) (receiver answered 502 Bad Gateway)") ||
		!strings.Contains(errOut, "was not delivered") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	_, list, _ := treaty(t, "notify", "deliveries", "--registry", addr)
	id := strings.Fields(list[strings.Index(list, "dlv_"):])[0]
	if code, out, errOut := treaty(t, "notify", "retry", id, "--registry", addr); code != exitOK || strings.TrimSpace(out) != "1 dead deliveries queued again" {
		t.Errorf("notify retry %s: exit %d\n%s%s", id, code, out, errOut)
	}
	if code, out, errOut := treaty(t, "notify", "retry", "dlv_nosuch", "--registry", addr); code != exitError || !strings.Contains(errOut, "NOT_FOUND") {
		t.Errorf("notify retry of an unknown delivery: exit %d\n%s%s", code, out, errOut)
	}
	for _, bad := range [][]string{{"notify", "retry"}, {"notify", "retry", "a", "b"}, {"notify", "retry", "a", "--all-dead"}} {
		if code, out, errOut := treaty(t, append(bad, "--registry", addr)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s%s", bad, code, exitUsage, out, errOut)
		}
	}
	// Without webhooks, a test says so.
	code, _, errOut = treaty(t, "notify", "test", "--registry", notifyServer(t))
	if code != exitError || !strings.Contains(errOut, "no webhook is configured") {
		t.Fatalf("without webhooks: exit %d\n%s", code, errOut)
	}
}
