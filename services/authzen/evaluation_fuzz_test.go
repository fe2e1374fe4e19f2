package authzen_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/services/authzen"
)

// FuzzHandler sends arbitrary JSON bodies to every AuthZEN endpoint, from a trusted and an
// untrusted caller: the answer is always JSON with a 2xx, 4xx or 503 status (never a 500 or a
// panic), an error answer has the AuthZEN error shape, and an untrusted caller is allowed only
// with the valid token the seeds carry (or a variant of it that verifies as the same token).
func FuzzHandler(f *testing.F) {
	e := newEnv(f)
	c := pdptest.Claims("acme-bot", "acme-api", "acme", "read write", "api", e.log.Epoch(), e.log.Head())
	c.Expiry = time.Now().Add(24 * time.Hour).Unix()
	tok := e.key.Mint(f, c)
	signed := tok[:strings.LastIndexByte(tok, '.')-1] // header and payload, but for padding bits
	logger := slog.New(slog.DiscardHandler)
	handlers := map[bool]http.Handler{}
	for _, trusted := range []bool{false, true} {
		var fn func(*http.Request) bool
		if trusted {
			fn = func(*http.Request) bool { return true }
		}
		h, err := authzen.New(authzen.Config{PDP: e.pdp, BaseURL: "https://pdp.example.com/", Trusted: fn, MaxBodyBytes: 64 << 10, Logger: logger})
		if err != nil {
			f.Fatal(err)
		}
		handlers[trusted] = h
	}
	paths := []string{authzen.PathEvaluation, authzen.PathEvaluations, authzen.PathSearchSubject, authzen.PathSearchResource, authzen.PathSearchAction}
	one := fmt.Sprintf(`{"subject":{"type":"workload","id":"acme-bot","properties":{"token":%q}},"action":{"name":"read"},"resource":{"type":"api","id":"api","properties":{"n":1,"f":0.5,"t":[1,{"a":null}]}},"context":{"source_ip":"192.0.2.1","environment":"p","min_sequence":1}}`, tok)
	for _, s := range []struct {
		path    uint8
		trusted bool
		body    string
	}{
		{0, false, one}, {0, true, `{"subject":{"type":"workload","id":"acme-bot"},"action":{"name":"read"},"resource":{"type":"api","id":"api"}}`},
		{1, false, `{"subject":{"type":"workload","id":"acme-bot","properties":{"token":"` + tok + `"}},"evaluations":[{"action":{"name":"read"},"resource":{"type":"api","id":"api"}},{}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`},
		{1, false, `{"evaluations":[` + one + `,` + one + `]}`},
		{2, true, `{"subject":{"type":"workload"},"action":{"name":"read"},"resource":{"type":"api","id":"api"},"page":{"limit":1,"token":"x"}}`},
		{3, true, `{"subject":{"type":"workload","id":"acme-bot"},"action":{"name":"read"},"resource":{"type":"api"}}`},
		{4, true, `{"subject":{"type":"workload","id":"acme-bot"},"resource":{"type":"api","id":"api"},"page":{"limit":-1}}`},
		{0, false, `{"subject":{"type":"workload","id":"acme-bot","properties":{"dpop":"a.b.c","token":1e999}}}`},
		{0, false, `{"context":{"min_sequence":18446744073709551616}}`},
		{0, false, `[]`}, {0, false, `{} {}`}, {0, false, ``}, {0, false, `{"subject":`},
	} {
		f.Add(s.path, s.trusted, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, path uint8, trusted bool, body []byte) {
		p := paths[int(path)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, p, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handlers[trusted].ServeHTTP(rec, req)
		status := rec.Code
		if status >= 500 && status != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d: %s", p, body, status, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: answer is not a JSON object: %v: %s", p, err, rec.Body)
		}
		if status >= 400 {
			e, _ := out["error"].(map[string]any)
			if msg, _ := e["message"].(string); msg == "" || e["status"] != float64(status) {
				t.Fatalf("%s: error answer %s", p, rec.Body)
			}
			return
		}
		if !trusted && allowed(out) && !bytes.Contains(body, []byte(signed)) {
			t.Fatalf("%s: allowed an untrusted caller without the valid token: %s -> %s", p, body, rec.Body)
		}
	})
}

// allowed reports whether an evaluation answer holds a true decision.
func allowed(out map[string]any) bool {
	if out["decision"] == true {
		return true
	}
	evs, _ := out["evaluations"].([]any)
	for _, ev := range evs {
		if m, _ := ev.(map[string]any); m["decision"] == true {
			return true
		}
	}
	return false
}
