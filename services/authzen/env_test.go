package authzen_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/authzen"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	partnerActive     = treatyv1.PartnerState_PARTNER_STATE_ACTIVE
	integrationActive = treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
	workloadActive    = treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE
	workloadSuspended = treatyv1.WorkloadState_WORKLOAD_STATE_SUSPENDED
)

// env is a real revoker log followed by a real PDP, served by the AuthZEN handler on two real
// loopback HTTP servers: one whose callers are trusted, one whose callers are not.
//
// The world: partner acme with integration acme-api (scopes read and write; audiences api and
// billing) and workloads acme-bot, acme-cron and acme-ops (suspended); partner globex with
// globex-api (scope read; audience api) and workload globex-bot; partner initech, blocked, with
// initech-api and initech-bot; and the issuer key k1.
type env struct {
	log       *revoker.Log
	key       *pdptest.Key
	pdp       *pdp.PDP
	recorded  *recorded // what the PDP hands its decision log
	trusted   string    // base URL of the server that trusts its callers
	untrusted string    // base URL of the server that trusts nobody
}

func newEnv(t testing.TB) *env {
	t.Helper()
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: log, key: pdptest.NewKey(t, "k1"), recorded: &recorded{}}
	pdptest.Publish(t, log,
		pdptest.Partner("acme", partnerActive, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", integrationActive, []string{"read", "write"}, []string{"api", "billing"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", workloadActive),
		pdptest.Workload("acme-cron", "acme-api", "acme", workloadActive),
		pdptest.Workload("acme-ops", "acme-api", "acme", workloadSuspended),
		pdptest.Partner("globex", partnerActive, pdptest.ContractEnd),
		pdptest.Integration("globex-api", "globex", integrationActive, []string{"read"}, []string{"api"}),
		pdptest.Workload("globex-bot", "globex-api", "globex", workloadActive),
		pdptest.Partner("initech", partnerActive, pdptest.ContractEnd),
		pdptest.Integration("initech-api", "initech", integrationActive, []string{"read"}, []string{"api"}),
		pdptest.Workload("initech-bot", "initech-api", "initech", workloadActive),
		e.key.Published(t),
	)
	pdptest.Revoke(t, log, treatyv1.TargetKind_TARGET_KIND_PARTNER, "initech")

	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.pdp = pdptest.Start(t, pdp.Config{
		Store: storetest.OpenBolt(t, pdp.Schema), Source: pdptest.NewSource(log, 50*time.Millisecond),
		MaxWait: 300 * time.Millisecond, Logger: logger, Recorder: e.recorded,
	})
	pdptest.WaitReady(t, e.pdp)
	e.trusted = e.serve(t, func(*http.Request) bool { return true }, logger)
	e.untrusted = e.serve(t, nil, logger)
	e.caughtUp(t)
	return e
}

func (e *env) serve(t testing.TB, trusted func(*http.Request) bool, logger *slog.Logger) string {
	h, err := authzen.New(authzen.Config{PDP: e.pdp, BaseURL: "https://pdp.example.com/", Trusted: trusted, MaxBodyBytes: 64 << 10, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// caughtUp waits until the PDP has applied everything in the log.
func (e *env) caughtUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.pdp.StateAt(ctx, e.log.Head()); err != nil {
		t.Fatal(err)
	}
}

// token mints a valid token for acme-bot (scopes read write, audience api), changed by edit.
func (e *env) token(t *testing.T, edit func(*token.Claims)) string {
	c := pdptest.Claims("acme-bot", "acme-api", "acme", "read write", "api", e.log.Epoch(), e.log.Head())
	if edit != nil {
		edit(&c)
	}
	return e.key.Mint(t, c)
}

// response is an HTTP answer with its body decoded as generic JSON.
type response struct {
	status int
	header http.Header
	body   any
}

// do sends a request with a JSON body (if any) and decodes the answer.
func do(t *testing.T, method, url, body string, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header}
	if len(raw) > 0 {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: Content-Type %q, body %s", method, url, ct, raw)
		}
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %s", method, url, err, raw)
		}
	}
	return out
}

func post(t *testing.T, url, body string) response {
	t.Helper()
	return do(t, http.MethodPost, url, body, nil)
}

// fill puts tokens into a request body written as a literal: each "$NAME" becomes vars[NAME].
func fill(body string, vars map[string]string) string {
	for k, v := range vars {
		body = strings.ReplaceAll(body, "$"+k, v)
	}
	return body
}

// parse decodes an expected body written as a JSON literal.
func parse(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expected JSON %s: %v", s, err)
	}
	return v
}

// stable removes what differs between runs from decision contexts (decision_id) and checks
// that each decision carried one, and replaces each sequence by true if it was a number.
func stable(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			switch k {
			case "decision_id":
				if s, _ := x.(string); s == "" {
					t.Errorf("empty decision_id in %v", v)
				}
			case "sequence":
				_, ok := x.(float64)
				out[k] = ok
			default:
				out[k] = stable(t, x)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = stable(t, x)
		}
		return out
	}
	return v
}

// expect checks an answer's status and body (after stable) against a JSON literal.
func expect(t *testing.T, got response, status int, want string) {
	t.Helper()
	if got.status != status {
		t.Errorf("status %d, want %d (body %v)", got.status, status, got.body)
	}
	if diff := cmp.Diff(parse(t, want), stable(t, got.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// errorMessage returns an error answer's message, checking its shape.
func errorMessage(t *testing.T, got response) string {
	t.Helper()
	m, _ := got.body.(map[string]any)
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if st, _ := e["status"].(float64); int(st) != got.status || msg == "" {
		t.Errorf("error body %v does not match status %d", got.body, got.status)
	}
	return msg
}

// recorded keeps the request id of every decision the PDP hands its recorder (the decision
// log's entry point).
type recorded struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorded) Record(req pdp.CheckRequest, _ pdp.Decision, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, req.RequestID)
}

// last returns the request id of the latest decision recorded.
func (r *recorded) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return "(none)"
	}
	return r.ids[len(r.ids)-1]
}
