package services

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/requestid"
)

func TestMetricsListenValidate(t *testing.T) {
	dir := t.TempDir()
	for addr, want := range map[string]string{
		"127.0.0.1:9464": "",
		"localhost:0":    "",
		"0.0.0.0:9464":   "--metrics-listen \"0.0.0.0:9464\" is not a loopback address",
		":9464":          "not a loopback address",
		"nonsense":       "--metrics-listen",
	} {
		err := Config{DataDir: dir, MetricsListen: addr}.Validate()
		switch {
		case want == "" && err != nil:
			t.Errorf("MetricsListen %q: %v, want nil", addr, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("MetricsListen %q: %v, want an error containing %q", addr, err, want)
		}
	}
}

// TestMetricsAndRequestIDs runs every service with --metrics-listen, issues a token, makes an
// allowed and a denied check, and scrapes /metrics over HTTP: the gRPC server's counts, the PDP's
// decisions by reason, its feed lag and state size, the revoker's subscribers and the issuer's
// live credentials. The denied check's request id comes back in the response header and is in
// its log line.
func TestMetricsAndRequestIDs(t *testing.T) {
	logs := &logtest.Buffer{}
	srv, conn := serve(t, Config{MetricsListen: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if srv.MetricsAddr() == "" {
		t.Fatal("no metrics address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitServing(ctx, t, srv)

	reg := treatyv1.NewRegistryServiceClient(conn)
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "test", Activate: true, ApprovedBy: "test", Partner: &treatyv1.Partner{
		Id: "acme", DisplayName: "Acme", OwnerTeam: "partnerships", ContractEndTime: timestamppb.New(time.Now().Add(90 * 24 * time.Hour)),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "test", Activate: true, ApprovedBy: "test", Integration: &treatyv1.Integration{
		Id: "acme-api", PartnerId: "acme", Environment: "production", AllowedScopes: []string{"orders.read"},
		Audiences: []string{"orders-api"}, MaxCredentialTtl: durationpb.New(time.Hour),
	}}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	if _, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{
		Id: "acme-bot", IntegrationId: "acme-api", Actor: "test",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}); err != nil {
		t.Fatal(err)
	}
	assertion, err := issuer.SignAssertion("acme-bot", srv.IssuerURL(), priv, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := treatyv1.NewIssuerServiceClient(conn).IssueToken(ctx, &treatyv1.IssueTokenRequest{
		ClientAssertion: assertion, Scopes: []string{"orders.read"}, Audience: "orders-api"})
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}

	pdp := treatyv1.NewDecisionServiceClient(conn)
	tok := &treatyv1.CheckRequest_Token{Token: issued.GetAccessToken()}
	allowed, err := pdp.Check(ctx, &treatyv1.CheckRequest{Subject: tok, Action: "orders.read", Resource: "orders-api"})
	if err != nil || allowed.GetDecision() != treatyv1.Decision_DECISION_ALLOW {
		t.Fatalf("allowed check: %v, %v", allowed, err)
	}
	var header metadata.MD
	denied, err := pdp.Check(metadata.AppendToOutgoingContext(ctx, requestid.Header, "metrics-test-1"),
		&treatyv1.CheckRequest{Subject: tok, Action: "orders.write", Resource: "orders-api"}, grpc.Header(&header))
	if err != nil || denied.GetDecision() != treatyv1.Decision_DECISION_DENY || denied.GetReasons()[0] != "scope_missing" {
		t.Fatalf("denied check: %v, %v", denied, err)
	}
	if got := header.Get(requestid.Header); len(got) != 1 || got[0] != "metrics-test-1" {
		t.Errorf("x-request-id header %v, want the id sent", got)
	}
	// The logging interceptor's line and the handler's own line (logged with the call's context)
	// both carry the id.
	lines := map[string]map[string]any{}
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["request_id"] == "metrics-test-1" {
			msg, _ := m["msg"].(string)
			if lines[msg] != nil {
				t.Errorf("two %q lines with the id", msg)
			}
			lines[msg] = m
		}
	}
	if l := lines["finished call"]; l == nil || l["grpc.method"] != "Check" || l["grpc.service"] != "treaty.v1.DecisionService" {
		t.Errorf("the denied check's finished-call line: %v", l)
	}
	if l := lines["check denied"]; l == nil || l["reason"] != "scope_missing" {
		t.Errorf("the PDP's check-denied line: %v", l)
	}
	if len(lines) != 2 {
		t.Errorf("lines with the id: %v", lines)
	}
	if strings.Contains(logs.String(), issued.GetAccessToken()) {
		t.Error("the access token is in the logs")
	}

	// Gauges that follow the feed may take a heartbeat to settle: scrape until they do.
	want := []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_service": "treaty.v1.DecisionService", "grpc_method": "Check", "grpc_code": "OK", "grpc_type": "unary"}, eq(2)},
		{"grpc_server_handling_seconds_count", map[string]string{"grpc_service": "treaty.v1.IssuerService", "grpc_method": "IssueToken"}, eq(1)},
		{"treaty_pdp_decisions_total", map[string]string{"kind": "check", "result": "allow", "reason": "granted"}, eq(1)},
		{"treaty_pdp_decisions_total", map[string]string{"kind": "check", "result": "deny", "reason": "scope_missing"}, eq(1)},
		{"treaty_pdp_decisions_total", map[string]string{"kind": "check", "result": "deny", "reason": "revoked"}, eq(0)},
		{"treaty_pdp_decisions_total", map[string]string{"kind": "issuance", "result": "allow", "reason": "granted"}, eq(1)},
		{"treaty_pdp_status", map[string]string{"status": "ready"}, eq(1)},
		{"treaty_pdp_feed_lag_events", nil, eq(0)},
		{"treaty_pdp_feed_applied_sequence", nil, func(v float64) bool { return v >= 4 }}, // partner, integration, workload, key
		{"treaty_pdp_feed_last_contact_seconds", nil, func(v float64) bool { return v >= 0 && v < 30 }},
		{"treaty_pdp_snapshot_records", map[string]string{"kind": "partners"}, eq(1)},
		{"treaty_pdp_snapshot_records", map[string]string{"kind": "integrations"}, eq(1)},
		{"treaty_pdp_snapshot_records", map[string]string{"kind": "workloads"}, eq(1)},
		{"treaty_pdp_snapshot_records", map[string]string{"kind": "revoked_credentials"}, eq(0)},
		// The log keeps no allows in this configuration (AllowSample 0): the allow is sampled out,
		// the deny kept and written.
		{"treaty_decision_log_decisions_total", map[string]string{"outcome": "kept"}, eq(1)},
		{"treaty_decision_log_decisions_total", map[string]string{"outcome": "sampled_out"}, eq(1)},
		{"treaty_decision_log_decisions_total", map[string]string{"outcome": "unlogged"}, eq(0)},
		{"treaty_decision_log_written_total", nil, eq(1)},
		{"treaty_decision_log_pending_decisions", nil, eq(0)},
		{"treaty_revoker_subscribers", nil, func(v float64) bool { return v >= 2 }}, // the PDP's and the issuer's followers at least
		{"treaty_revoker_subscribers_cut_off_total", map[string]string{"reason": "slow"}, eq(0)},
		{"treaty_revoker_subscriber_lag_events", map[string]string{"subscriber": access.InternalName}, eq(0)}, // this process's own followers
		{"treaty_revoker_subscriber_lag_max_events", nil, eq(0)},
		{"treaty_issuer_credentials_live", map[string]string{"partner": "acme"}, eq(1)},
		{"treaty_issuer_credentials_live_all", nil, eq(1)},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
		{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }},
	}
	var problems []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		samples := scrapeMetrics(t, "http://"+srv.MetricsAddr()+"/metrics", srv.BootstrapToken())
		problems = problems[:0]
		for _, w := range want {
			v, ok := samples.find(w.name, w.labels)
			switch {
			case !ok:
				problems = append(problems, "missing "+w.name+labelString(w.labels))
			case !w.ok(v):
				problems = append(problems, w.name+labelString(w.labels)+" = "+strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	// A scraper must authenticate: the metrics name partners and subscribers.
	resp, err := http.Get("http://" + srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a credential: %d, want 401", resp.StatusCode)
	}
	// Only GET /metrics is served there.
	resp, err = http.Get("http://" + srv.MetricsAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / on the metrics listener: %d", resp.StatusCode)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type samples []sample

// find returns the value of the first sample named name whose labels include labels.
func (ss samples) find(name string, labels map[string]string) (float64, bool) {
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrapeMetrics GETs the metrics in the text format and parses them.
func scrapeMetrics(t *testing.T, url, token string) samples {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v\n%s", url, resp.StatusCode, err, body)
	}
	var out samples
	for l := range strings.Lines(string(body)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unparsable metrics line %q", l)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	b, _ := json.Marshal(labels)
	return string(b)
}
