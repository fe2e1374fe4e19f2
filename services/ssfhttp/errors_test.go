package ssfhttp_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/services/ssfhttp"
	"github.com/treaty-dev/treaty/ssf"
)

// TestBadRequests pins the status of every refusal.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil, nil)
	var push, poll ssf.StreamConfig
	e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{
		"delivery": map[string]string{"method": ssf.MethodPush, "endpoint_url": "https://receiver.example.com/events"},
	}, &push)
	e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{}, &poll)
	unknown := strings.Repeat("ab", 16)
	bearer := "Bearer " + receiverToken

	cases := []struct {
		name, auth, method, path, ctype, body string
		want                                  int
		wantErr                               string
	}{
		{name: "no token", method: "GET", path: "/ssf/stream", want: 401, wantErr: "authentication_failed"},
		{name: "wrong token", auth: "Bearer not-the-token-at-all", method: "GET", path: "/ssf/stream", want: 401},
		{name: "basic scheme", auth: "Basic " + receiverToken, method: "GET", path: "/ssf/stream", want: 401},
		{name: "token in query refused", method: "GET", path: "/ssf/stream?access_token=" + receiverToken, want: 401},
		{name: "poll without token", method: "POST", path: "/ssf/poll/" + poll.StreamID, body: `{}`, want: 401},
		{name: "unknown path", auth: bearer, method: "GET", path: "/ssf/nothing", want: 404},
		{name: "metadata by POST", method: "POST", path: "/.well-known/ssf-configuration", want: 405},
		{name: "verify by GET", auth: bearer, method: "GET", path: "/ssf/verify", want: 405},
		{name: "stream by OPTIONS", auth: bearer, method: "OPTIONS", path: "/ssf/stream", want: 405},
		{name: "not JSON", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":`, want: 400, wantErr: "invalid_request"},
		{name: "JSON array", auth: bearer, method: "POST", path: "/ssf/stream", body: `[]`, want: 400},
		{name: "trailing data", auth: bearer, method: "POST", path: "/ssf/stream", body: `{} {}`, want: 400},
		{name: "wrong content type", auth: bearer, method: "POST", path: "/ssf/stream", ctype: "text/plain", body: `{}`, want: 415},
		{name: "too large", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"description":"` + strings.Repeat("x", ssfhttp.DefaultMaxBodyBytes) + `"}`, want: 413},
		{name: "unknown method", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":{"method":"urn:example:smoke-signals"}}`, want: 400},
		{name: "push without endpoint", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":{"method":"urn:ietf:rfc:8935"}}`, want: 400},
		{name: "push over plain http", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"http://receiver.example.com/e"}}`, want: 400},
		{name: "push with credentials in URL", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"https://u:p@receiver.example.com/e"}}`, want: 400},
		{name: "poll with receiver URL", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"delivery":{"method":"urn:ietf:rfc:8936","endpoint_url":"https://elsewhere.example.com"}}`, want: 400},
		{name: "description too long", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"description":"` + strings.Repeat("x", 2000) + `"}`, want: 400},
		{name: "events_requested not an array", auth: bearer, method: "POST", path: "/ssf/stream", body: `{"events_requested":"x"}`, want: 400},
		{name: "read unknown stream", auth: bearer, method: "GET", path: "/ssf/stream?stream_id=" + unknown, want: 404, wantErr: "not_found"},
		{name: "read malformed stream id", auth: bearer, method: "GET", path: "/ssf/stream?stream_id=../x", want: 404},
		{name: "patch without stream_id", auth: bearer, method: "PATCH", path: "/ssf/stream", body: `{"description":"x"}`, want: 400},
		{name: "patch unknown stream", auth: bearer, method: "PATCH", path: "/ssf/stream", body: `{"stream_id":"` + unknown + `"}`, want: 404},
		{name: "patch changes aud", auth: bearer, method: "PATCH", path: "/ssf/stream", body: `{"stream_id":"` + push.StreamID + `","aud":"urn:other"}`, want: 400},
		{name: "patch changes iss", auth: bearer, method: "PATCH", path: "/ssf/stream", body: `{"stream_id":"` + push.StreamID + `","iss":"https://evil.example.com"}`, want: 400},
		{name: "patch stale events_delivered", auth: bearer, method: "PATCH", path: "/ssf/stream", body: `{"stream_id":"` + push.StreamID + `","events_delivered":["urn:x"]}`, want: 400},
		{name: "delete without stream_id", auth: bearer, method: "DELETE", path: "/ssf/stream", want: 400},
		{name: "delete unknown", auth: bearer, method: "DELETE", path: "/ssf/stream?stream_id=" + unknown, want: 404},
		{name: "status unknown", auth: bearer, method: "GET", path: "/ssf/status?stream_id=" + unknown, want: 404},
		{name: "status without stream_id", auth: bearer, method: "GET", path: "/ssf/status", want: 400},
		{name: "status bad value", auth: bearer, method: "POST", path: "/ssf/status", body: `{"stream_id":"` + push.StreamID + `","status":"asleep"}`, want: 400},
		{name: "status missing value", auth: bearer, method: "POST", path: "/ssf/status", body: `{"stream_id":"` + push.StreamID + `"}`, want: 400},
		{name: "verify unknown", auth: bearer, method: "POST", path: "/ssf/verify", body: `{"stream_id":"` + unknown + `"}`, want: 404},
		{name: "verify without stream_id", auth: bearer, method: "POST", path: "/ssf/verify", body: `{}`, want: 400},
		{name: "poll unknown stream", auth: bearer, method: "POST", path: "/ssf/poll/" + unknown, body: `{}`, want: 404},
		{name: "poll a push stream", auth: bearer, method: "POST", path: "/ssf/poll/" + push.StreamID, body: `{"returnImmediately":true}`, want: 409},
		{name: "poll negative maxEvents", auth: bearer, method: "POST", path: "/ssf/poll/" + poll.StreamID, body: `{"maxEvents":-1}`, want: 400},
		{name: "poll huge maxEvents", auth: bearer, method: "POST", path: "/ssf/poll/" + poll.StreamID, body: `{"maxEvents":100000}`, want: 400},
		{name: "poll ack not array", auth: bearer, method: "POST", path: "/ssf/poll/" + poll.StreamID, body: `{"ack":"x"}`, want: 400},
		{name: "poll by GET", auth: bearer, method: "GET", path: "/ssf/poll/" + poll.StreamID, want: 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = bytes.NewReader([]byte(c.body))
			}
			req, err := http.NewRequest(c.method, e.issuer+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			if c.body != "" {
				ct := c.ctype
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.want {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, c.want, raw)
			}
			if c.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a Bearer challenge")
			}
			if c.wantErr != "" && !strings.Contains(string(raw), `"err":"`+c.wantErr+`"`) {
				t.Fatalf("body %s lacks err %q", raw, c.wantErr)
			}
		})
	}
}

// TestStreamLifecycle: read, list, patch, replace and delete keep the stream's configuration
// as SSF 1.0 section 8.1.1 describes.
func TestStreamLifecycle(t *testing.T) {
	e := newEnv(t, nil, nil)
	url := e.issuer + "/ssf/stream"
	var list []ssf.StreamConfig
	if code := e.call(t, http.MethodGet, url, nil, &list); code != http.StatusOK || len(list) != 0 {
		t.Fatalf("list with no streams = %d %v, want 200 []", code, list)
	}
	var a, b ssf.StreamConfig
	e.call(t, http.MethodPost, url, map[string]any{"description": "a", "events_requested": []string{ssf.EventSessionRevoked}}, &a)
	e.call(t, http.MethodPost, url, map[string]any{"description": "b"}, &b)
	if a.StreamID == b.StreamID {
		t.Fatal("two streams share an id")
	}
	if len(a.EventsDelivered) != 1 || a.EventsDelivered[0] != ssf.EventSessionRevoked {
		t.Fatalf("events_delivered = %v", a.EventsDelivered)
	}
	if code := e.call(t, http.MethodGet, url, nil, &list); code != http.StatusOK || len(list) != 2 {
		t.Fatalf("list = %d, %d streams", code, len(list))
	}

	// PATCH changes only what it names; transmitter-supplied fields that match are accepted.
	var patched ssf.StreamConfig
	if code := e.call(t, http.MethodPatch, url, map[string]any{"stream_id": a.StreamID, "description": "a2", "aud": a.Aud, "iss": a.Iss}, &patched); code != http.StatusOK {
		t.Fatalf("patch = %d", code)
	}
	if patched.Description != "a2" || len(patched.EventsRequested) != 1 {
		t.Fatalf("patched = %+v", patched)
	}
	// PUT resets what it omits.
	var replaced ssf.StreamConfig
	if code := e.call(t, http.MethodPut, url, map[string]any{"stream_id": a.StreamID, "delivery": map[string]string{"method": ssf.MethodPoll}}, &replaced); code != http.StatusOK {
		t.Fatalf("put = %d", code)
	}
	if replaced.Description != "" || replaced.EventsRequested != nil || len(replaced.EventsDelivered) != 2 {
		t.Fatalf("replaced = %+v", replaced)
	}
	var read ssf.StreamConfig
	if code := e.call(t, http.MethodGet, url+"?stream_id="+a.StreamID, nil, &read); code != http.StatusOK || read.Description != "" || read.Aud != a.Aud {
		t.Fatalf("read = %d %+v", code, read)
	}
	if code := e.call(t, http.MethodDelete, url+"?stream_id="+a.StreamID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete = %d", code)
	}
	if code := e.call(t, http.MethodGet, url+"?stream_id="+a.StreamID, nil, nil); code != http.StatusNotFound {
		t.Fatalf("read deleted = %d", code)
	}
	if code := e.call(t, http.MethodGet, url, nil, &list); code != http.StatusOK || len(list) != 1 || list[0].StreamID != b.StreamID {
		t.Fatalf("list after delete = %v", list)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	if _, err := ssfhttp.New(ssfhttp.Config{}); err == nil {
		t.Fatal("New without a transmitter succeeded")
	}
	e := newEnv(t, nil, nil)
	if _, err := ssfhttp.New(ssfhttp.Config{Transmitter: e.tr, ReceiverToken: "short"}); err == nil {
		t.Fatal("New with a short receiver token succeeded")
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ssfhttp.ReadToken(write("ok", receiverToken+"\n")); err != nil || got != receiverToken {
		t.Fatalf("ReadToken = %q, %v", got, err)
	}
	for name, content := range map[string]string{"short": "abc\n", "two-lines": receiverToken + "\n" + receiverToken, "empty": ""} {
		if _, err := ssfhttp.ReadToken(write(name, content)); err == nil {
			t.Errorf("%s: ReadToken accepted it", name)
		} else if strings.Contains(err.Error(), receiverToken) {
			t.Errorf("%s: the error reveals the token", name)
		}
	}
	if _, err := ssfhttp.ReadToken(dir + "/missing"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestVerificationRateLimit: with a min_verification_interval, a second request inside it is 429
// (SSF 1.0 section 8.1.1), and the interval is advertised in the stream's configuration.
func TestVerificationRateLimit(t *testing.T) {
	e := newEnvWith(t, nil, nil, nil, func(c *ssf.Config) { c.MinVerificationInterval = time.Hour })
	var cfg ssf.StreamConfig
	e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{}, &cfg)
	if cfg.MinVerificationInterval != 3600 {
		t.Fatalf("min_verification_interval = %d, want 3600", cfg.MinVerificationInterval)
	}
	body := map[string]string{"stream_id": cfg.StreamID}
	if code := e.call(t, http.MethodPost, e.issuer+"/ssf/verify", body, nil); code != http.StatusNoContent {
		t.Fatalf("first verification = %d", code)
	}
	var errBody map[string]string
	if code := e.call(t, http.MethodPost, e.issuer+"/ssf/verify", body, &errBody); code != http.StatusTooManyRequests || errBody["err"] != "too_many_requests" {
		t.Fatalf("second verification = %d %v, want 429", code, errBody)
	}
	var other ssf.StreamConfig
	e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{}, &other)
	if code := e.call(t, http.MethodPost, e.issuer+"/ssf/verify", map[string]string{"stream_id": other.StreamID}, nil); code != http.StatusNoContent {
		t.Fatalf("another stream's verification = %d; the limit is per stream", code)
	}
}
