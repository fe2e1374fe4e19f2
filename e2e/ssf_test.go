package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/ssf/ssftest"
)

// TestSharedSignals runs `treaty serve` with the SSF transmitter on its HTTP listener, registers a
// push receiver the way a receiver would (metadata, JWKS, stream creation), revokes a partner with
// the CLI, and verifies the SET the receiver gets against the published JWKS.
func TestSharedSignals(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "ssf-token")
	const receiverToken = "e2e-receiver-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(receiverToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, addr, "--data", t.TempDir(), "--http-listen", httpAddr, "--ssf-receiver-token-file", tokenFile)
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	o.onboard("acme")

	base := "http://" + httpAddr
	call := func(method, path, token string, body any, want int) []byte {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, out, want)
		}
		return out
	}

	var meta struct {
		Issuer          string   `json:"issuer"`
		JWKSURI         string   `json:"jwks_uri"`
		ConfigurationEP string   `json:"configuration_endpoint"`
		DeliveryMethods []string `json:"delivery_methods_supported"`
	}
	if err := json.Unmarshal(call("GET", "/.well-known/ssf-configuration", "", nil, 200), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Issuer != base || !strings.HasPrefix(meta.JWKSURI, base) || !strings.HasPrefix(meta.ConfigurationEP, base) {
		t.Fatalf("metadata = %+v, want endpoints under %s", meta, base)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(call("GET", strings.TrimPrefix(meta.JWKSURI, base), "", nil, 200), &jwks); err != nil {
		t.Fatal(err)
	}

	// Stream management needs the receiver token.
	rcv := ssftest.NewReceiver(t, 0)
	stream := map[string]any{"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": rcv.URL}}
	call("POST", "/ssf/stream", "", stream, 401)
	call("POST", "/ssf/stream", "wrong-token-wrong-token", stream, 401)
	call("POST", "/ssf/stream", receiverToken, stream, 201)

	seq := sequenceOf(t, o.json(0, "revoke", "partner", "acme", "--reason", "contract breach"))
	set := ssftest.Verify(t, rcv.WaitSETs(t, 1)[0], jwks)
	typ, ev := set.EventType(t)
	if set.Type != "secevent+jwt" || set.Claims["iss"] != base || !strings.HasSuffix(typ, "/session-revoked") || ev["reason_admin"] == nil {
		t.Fatalf("SET for the partner block (sequence %d): typ %q, iss %v, event %s %v", seq, set.Type, set.Claims["iss"], typ, ev)
	}
	if !strings.Contains(toJSON(set.Claims["sub_id"]), "acme") {
		t.Fatalf("SET subject %v does not name the partner", set.Claims["sub_id"])
	}
}
