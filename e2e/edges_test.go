package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// TestEnforcementPoints drives the decision point the way gateways do, through `treaty serve`:
// the AuthZEN HTTP API with plain JSON, and Envoy's ext_authz API with a real Envoy-typed gRPC
// client; then pulls the kill switch and sees both deny.
func TestEnforcementPoints(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.json")
	if err := os.WriteFile(routes, []byte(`{"routes": [
		{"method": "GET", "prefix": "/v1/orders", "action": "orders.read", "resource": "orders-api"},
		{"method": "POST", "prefix": "/v1/orders", "action": "orders.write", "resource": "orders-api"}
	]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, addr, "--data", filepath.Join(dir, "data"), "--http-listen", httpAddr, "--extauthz-routes", routes)
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: dir}
	key := o.onboard("acme")
	tok := o.token("acme", key)

	evaluate := func(body string) map[string]any { return evaluate(t, httpAddr, body) }
	ask := func(action string) string {
		return `{"subject": {"type": "workload", "id": "acme-bot", "properties": {"token": "` + tok + `"}},
			"action": {"name": "` + action + `"}, "resource": {"type": "api", "id": "orders-api"}}`
	}

	conn := dial(t, addr)
	envoy := authv3.NewAuthorizationClient(conn)
	gateway := func(method, path string) (codes.Code, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := envoy.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3"}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Path: path, Host: "orders.example", Scheme: "https",
				Headers: map[string]string{"authorization": "Bearer " + tok},
			}},
		}})
		if err != nil {
			t.Fatalf("ext_authz Check: %v", err)
		}
		reason := ""
		if d := resp.GetDeniedResponse(); d != nil {
			for _, h := range d.GetHeaders() {
				if h.GetHeader().GetKey() == "x-treaty-reason" {
					reason = h.GetHeader().GetValue()
				}
			}
		}
		return codes.Code(resp.GetStatus().GetCode()), reason
	}

	if out := evaluate(ask("orders.read")); out["decision"] != true {
		t.Fatalf("AuthZEN orders.read: %v, want an allow", out)
	}
	if out := evaluate(ask("orders.write")); out["decision"] != false || !strings.Contains(toJSON(out["context"]), "scope_missing") {
		t.Fatalf("AuthZEN orders.write: %v, want a deny for scope_missing", out)
	}
	if code, reason := gateway("GET", "/v1/orders/42"); code != codes.OK {
		t.Fatalf("ext_authz GET: %v %s, want OK", code, reason)
	}
	if code, reason := gateway("POST", "/v1/orders"); code != codes.PermissionDenied || reason != "scope_missing" {
		t.Fatalf("ext_authz POST: %v %q, want PERMISSION_DENIED scope_missing", code, reason)
	}
	if code, reason := gateway("GET", "/v1/invoices"); code != codes.PermissionDenied || reason != "no_route" {
		t.Fatalf("ext_authz unrouted: %v %q, want PERMISSION_DENIED no_route", code, reason)
	}

	meta, err := http.Get("http://" + httpAddr + "/.well-known/authzen-configuration")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(meta.Body)
	meta.Body.Close()
	if meta.StatusCode != http.StatusOK || !strings.Contains(string(raw), "http://"+httpAddr+"/access/v1/evaluation") {
		t.Fatalf("metadata: HTTP %d %s", meta.StatusCode, raw)
	}

	// The kill switch reaches both enforcement points.
	out := o.json(0, "revoke", "partner", "acme", "--reason", "incident")
	seq := sequenceOf(t, out)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, reason := gateway("GET", "/v1/orders/42")
		if code == codes.PermissionDenied && reason == "partner_blocked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ext_authz after revoking at %d: %v %q, want PERMISSION_DENIED partner_blocked", seq, code, reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := evaluate(ask("orders.read")); out["decision"] != false || !strings.Contains(toJSON(out["context"]), "partner_blocked") {
		t.Fatalf("AuthZEN after the kill switch: %v, want a deny for partner_blocked", out)
	}

	// Every one of those decisions is in the decision log, with the caller's request id, and
	// never the token.
	logged := o.run(0, "decisions", "list", "--subject", "acme-bot", "--limit", "0", "-o", "json").stdout
	if strings.Contains(logged, tok) || strings.Contains(logged, strings.Split(tok, ".")[2]) {
		t.Fatal("the decision log holds the token")
	}
	var allows, denies, requestIDs int
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("decisions list printed %q: %v", line, err)
		}
		switch rec["decision"] {
		case "DECISION_ALLOW":
			allows++
		case "DECISION_DENY":
			denies++
		}
		if rec["request_id"] == "e2e-1" {
			requestIDs++
		}
	}
	if allows < 2 || denies < 4 || requestIDs < 3 {
		t.Fatalf("decision log: %d allows, %d denies, %d with the request id, want at least 2, 4, 3:\n%s", allows, denies, requestIDs, logged)
	}
}

func toJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// evaluate posts one AuthZEN evaluation to the server at httpAddr and decodes the answer,
// failing unless it is HTTP 200 with the request id echoed.
func evaluate(t *testing.T, httpAddr, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/access/v1/evaluation", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", bearer(t))
	req.Header.Set("X-Request-ID", "e2e-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-ID") != "e2e-1" {
		t.Fatalf("evaluation: HTTP %d, X-Request-ID %q: %s", resp.StatusCode, resp.Header.Get("X-Request-ID"), raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("evaluation answered %s: %v", raw, err)
	}
	return out
}
