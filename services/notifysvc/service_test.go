package notifysvc_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/notifysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("notifysvc-test-secret-0123456789")

// start runs a notifier beside a real registry and revoker, posting to a loopback receiver, and
// serves NotifyService on loopback.
func start(t *testing.T) (treatyv1.NotifyServiceClient, *httptest.Server) {
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
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify(secret, r.Header.Get(notify.HeaderSignature), body, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	n, err := notify.Open(context.Background(), notify.Config{
		Store: storetest.OpenBolt(t, notify.Schema), Directory: reg, Secret: secret,
		Endpoints: []string{rcv.URL + "/hook?token=abc"}, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	done2 := make(chan struct{})
	go func() { n.Run(ctx); close(done2) }()
	t.Cleanup(func() { cancel(); <-done; <-done2 })
	conn := grpctest.Serve(t, notifysvc.New(notifysvc.Config{Notifier: n, Logger: quiet}).Register)
	return treatyv1.NewNotifyServiceClient(conn), rcv
}

func TestSendTestAndList(t *testing.T) {
	client, rcv := start(t)
	ctx := context.Background()
	sent, err := client.SendTest(ctx, &treatyv1.SendTestRequest{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	redacted := rcv.URL + "/..."
	if sent.GetNotificationId() == "" || len(sent.GetEndpoints()) != 1 || sent.GetEndpoints()[0] != redacted {
		t.Fatalf("SendTest = %v", sent)
	}
	var d *treatyv1.WebhookDelivery
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{State: treatyv1.DeliveryState_DELIVERY_STATE_DELIVERED})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetDeliveries()) == 1 {
			d = resp.GetDeliveries()[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the test notification was not delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d.GetNotificationId() != sent.GetNotificationId() || d.GetType() != notify.TypeTest || d.GetEndpoint() != redacted ||
		len(d.GetAttempts()) != 1 || d.GetAttempts()[0].GetStatusCode() != 204 || d.GetNextAttemptTime() != nil ||
		!strings.HasPrefix(d.GetDeliveryId(), "dlv_") {
		t.Errorf("delivery = %v", d)
	}
	resp, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{State: treatyv1.DeliveryState_DELIVERY_STATE_DEAD})
	if err != nil || len(resp.GetDeliveries()) != 0 || len(resp.GetEndpoints()) != 1 {
		t.Errorf("dead deliveries = %v, %v", resp, err)
	}
	if r, err := client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{AllDead: true}); err != nil || r.GetRetried() != 0 {
		t.Errorf("RetryDeliveries(all dead) = %v, %v; want 0", r, err)
	}
	_, err = client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{DeliveryId: d.GetDeliveryId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RetryDeliveries(delivered) = %v, want FailedPrecondition", err)
	}
	_, err = client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{DeliveryId: "dlv_nosuch"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("RetryDeliveries(unknown) = %v, want NotFound", err)
	}
}

func TestBadInput(t *testing.T) {
	client, _ := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"unknown state", func() error {
			_, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{State: 99})
			return err
		}, "state"},
		{"bad partner id", func() error {
			_, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{PartnerId: "Not An Id!"})
			return err
		}, "partner_id"},
		{"negative page size", func() error {
			_, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"forged page token", func() error {
			_, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{PageToken: "zz"})
			return err
		}, "page_token"},
		{"retry nothing", func() error {
			_, err := client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{})
			return err
		}, "delivery_id"},
		{"retry one and all", func() error {
			_, err := client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{DeliveryId: "dlv_1", AllDead: true})
			return err
		}, "all_dead"},
		{"retry a malformed id", func() error {
			_, err := client.RetryDeliveries(ctx, &treatyv1.RetryDeliveriesRequest{DeliveryId: "dlv 1"})
			return err
		}, "delivery_id"},
		{"long actor", func() error {
			_, err := client.SendTest(ctx, &treatyv1.SendTestRequest{Actor: strings.Repeat("a", 1000)})
			return err
		}, "actor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if got := field(err); got != tc.field {
				t.Errorf("field = %q, want %q", got, tc.field)
			}
		})
	}
}

func field(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}
