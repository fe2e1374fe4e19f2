package services

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

func TestNotifyConfigValidate(t *testing.T) {
	dir := t.TempDir()
	hook := []string{"https://hooks.example.com/T0KEN"}
	for _, tc := range []struct {
		cfg  Config
		want string // empty: valid
	}{
		{Config{DataDir: dir, Notify: NotifyConfig{WebhookURLs: hook, SecretFile: "s"}}, ""},
		{Config{DataDir: dir, Notify: NotifyConfig{WebhookURLs: hook}}, "--webhook-secret-file"},
		{Config{DataDir: dir, Notify: NotifyConfig{SecretFile: "s"}}, "needs --webhook-url"},
		{Config{DataDir: dir, Notify: NotifyConfig{WebhookURLs: []string{"hooks.example.com/T0KEN"}, SecretFile: "s"}}, "absolute http(s) URL"},
		{Config{DataDir: dir, Notify: NotifyConfig{WebhookURLs: hook, SecretFile: "s", ContractWarning: -time.Hour}}, "--contract-warning"},
		{Config{DataDir: dir, Services: []string{Revoker}, Notify: NotifyConfig{WebhookURLs: hook, SecretFile: "s"}}, "beside the registry"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.cfg.Notify, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.cfg.Notify, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "T0KEN") {
			t.Errorf("the error quotes the webhook's path: %v", err)
		}
	}
}

// TestServeNotify runs all services with a webhook: a test notification sent through
// NotifyService and a break-glass revocation through the revoker both reach the receiver, signed;
// with the stores in bbolt files, and with the registry's and revoker's in etcd.
func TestServeNotify(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { testServeNotify(t, Config{}) })
	t.Run("etcd", func(t *testing.T) {
		cluster := etcdtest.Start(t, 1)
		testServeNotify(t, Config{Store: StoreConfig{Backend: BackendEtcd, Endpoints: cluster.Endpoints()}, KEKFile: writeKEK(t), IssuerURL: "https://treaty.test"})
	})
}

func testServeNotify(t *testing.T, cfg Config) {
	secret := "serve-notify-secret-0123456789"
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var types []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var n notify.Notification
		json.Unmarshal(body, &n)
		mu.Lock()
		types = append(types, n.Type)
		mu.Unlock()
	}))
	defer rcv.Close()
	cfg.Notify = NotifyConfig{WebhookURLs: []string{rcv.URL + "/hook"}, SecretFile: secretFile}
	srv, conn := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := treatyv1.NewNotifyServiceClient(conn).SendTest(ctx, &treatyv1.SendTestRequest{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	// The notifier starts following the feed at its head; wait until it does, then pull the
	// break-glass lever.
	for {
		if epoch, _, _ := srv.notifier.FeedPosition(); epoch != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the notifier did not start following the feed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := treatyv1.NewRevocationServiceClient(conn).RevokeAll(ctx, &treatyv1.RevokeAllRequest{Reason: "drill", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		got := strings.Join(types, ",")
		mu.Unlock()
		if strings.Contains(got, notify.TypeTest) && strings.Contains(got, notify.TypeRevokeAll) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the receiver got %q after 30s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServePostureFindingNotified checks the wiring between the posture schedule and the
// notifier: a new high-severity finding (a critical partner's integration issuing bearer tokens)
// reaches the owners' webhook, while the findings present at the baseline do not.
func TestServePostureFindingNotified(t *testing.T) {
	secret := "serve-posture-secret-0123456789"
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	findings := make(chan string, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var n notify.Notification
		json.Unmarshal(body, &n)
		if n.Type == notify.TypeFinding && n.Partner != nil {
			findings <- n.Partner.ID + " " + n.Details["rule"]
		}
	}))
	defer rcv.Close()
	_, conn := serve(t, Config{
		Notify: NotifyConfig{WebhookURLs: []string{rcv.URL + "/hook"}, SecretFile: secretFile}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reports := treatyv1.NewReportServiceClient(conn)
	if _, err := reports.GetPosture(ctx, &treatyv1.GetPostureRequest{Refresh: true}); err != nil {
		t.Fatal(err) // the baseline
	}
	reg := treatyv1.NewRegistryServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Partner: &treatyv1.Partner{
			Id: "acme", DisplayName: "Acme", OwnerTeam: "payments", RiskTier: treatyv1.RiskTier_RISK_TIER_CRITICAL,
			ContractEndTime: timestamppb.New(time.Now().Add(365 * 24 * time.Hour)),
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "alice", Activate: true, ApprovedBy: "bob",
		Integration: &treatyv1.Integration{
			Id: "acme-crm", PartnerId: "acme", AllowedScopes: []string{"orders.read"}, Audiences: []string{"https://api.example.com"},
			MaxCredentialTtl: durationpb.New(10 * time.Minute), Environment: "production", Owner: "payments",
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reports.GetPosture(ctx, &treatyv1.GetPostureRequest{Refresh: true}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case got := <-findings:
			if got == "acme bearer_tokens_for_critical_partner" {
				return
			}
		case <-ctx.Done():
			t.Fatal("the bearer-token finding did not reach the webhook within 30s")
		}
	}
}
