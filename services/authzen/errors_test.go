package authzen_test

import (
	"net/http"
	"strings"
	"testing"
)

// Every malformed request gets its status and a message naming what is wrong.
func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	const eval = "/access/v1/evaluation"
	const ok = `"action": {"name": "read"}, "resource": {"type": "api", "id": "api"}`
	const subj = `"subject": {"type": "workload", "id": "acme-bot", "properties": {"token": "x.y.z"}}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		status int
		msg    string // a part of the error message
	}{
		{name: "malformed JSON", path: eval, body: `{"subject": `, status: 400, msg: "not valid JSON"},
		{name: "empty body", path: eval, header: map[string]string{"Content-Type": "application/json"}, status: 400, msg: "the request body is empty"},
		{name: "not an object", path: eval, body: `["subject"]`, status: 400, msg: "must be a JSON object"},
		{name: "trailing data", path: eval, body: `{` + subj + `, ` + ok + `} {}`, status: 400, msg: "nothing after it"},
		{name: "subject id a number", path: eval, body: `{"subject": {"type": "workload", "id": 7}, ` + ok + `}`, status: 400, msg: "subject.id must be a string"},
		{name: "action a string", path: eval, body: `{` + subj + `, "action": "read", "resource": {"type": "api", "id": "api"}}`, status: 400, msg: "action must be an object"},
		{name: "no subject", path: eval, body: `{` + ok + `}`, status: 400, msg: "subject is required"},
		{name: "unknown subject type", path: eval, body: `{"subject": {"type": "user", "id": "alice"}, ` + ok + `}`, status: 400, msg: `subject.type "user" is not known`},
		{name: "bad workload id", path: eval, body: `{"subject": {"type": "workload", "id": "Acme Bot"}, ` + ok + `}`, status: 400, msg: "subject.id must be a workload id"},
		{name: "token not a string", path: eval, body: `{"subject": {"type": "workload", "id": "acme-bot", "properties": {"token": 5}}, ` + ok + `}`, status: 400, msg: "subject.properties.token must be a non-empty string"},
		{name: "proof not an object", path: eval, body: `{"subject": {"type": "workload", "id": "acme-bot", "properties": {"token": "x", "proof": "p"}}, ` + ok + `}`, status: 400, msg: "subject.properties.proof must be an object"},
		{name: "no action", path: eval, body: `{` + subj + `, "resource": {"type": "api", "id": "api"}}`, status: 400, msg: "action is required"},
		{name: "bad action name", path: eval, body: `{` + subj + `, "action": {"name": "read all"}, "resource": {"type": "api", "id": "api"}}`, status: 400, msg: "action.name must be a scope name"},
		{name: "unknown resource type", path: eval, body: `{` + subj + `, "action": {"name": "read"}, "resource": {"type": "document", "id": "1"}}`, status: 400, msg: `resource.type "document" is not known`},
		{name: "no resource id", path: eval, body: `{` + subj + `, "action": {"name": "read"}, "resource": {"type": "api"}}`, status: 400, msg: "resource.id is required"},
		{name: "bad source ip", path: eval, body: `{` + subj + `, ` + ok + `, "context": {"source_ip": "somewhere"}}`, status: 400, msg: "context.source_ip must be an IPv4 or IPv6 address"},
		{name: "negative min_sequence", path: eval, body: `{` + subj + `, ` + ok + `, "context": {"min_sequence": -1}}`, status: 400, msg: "context.min_sequence must be a non-negative integer"},
		{name: "unknown semantic", path: "/access/v1/evaluations", body: `{` + subj + `, ` + ok + `, "options": {"evaluations_semantic": "any"}, "evaluations": [{}]}`, status: 400, msg: `"any" is not known`},
		{name: "evaluation lacks a member", path: "/access/v1/evaluations", body: `{` + subj + `, "evaluations": [{"action": {"name": "read"}, "resource": {"type": "api", "id": "api"}}, {"action": {"name": "read"}}]}`, status: 400, msg: "evaluations[1].resource is required"},
		{name: "too many evaluations", path: "/access/v1/evaluations", body: `{` + subj + `, ` + ok + `, "evaluations": [` + strings.Repeat(`{},`, 256) + `{}]}`, status: 400, msg: "at most 256"},
		{name: "bad page limit", path: "/access/v1/search/action", body: `{"subject": {"type": "workload", "id": "acme-bot"}, "resource": {"type": "api", "id": "api"}, "page": {"limit": 1.5}}`, status: 400, msg: "page.limit must be an integer"},
		{name: "foreign page token", path: "/access/v1/search/action", body: `{"subject": {"type": "workload", "id": "acme-bot"}, "resource": {"type": "api", "id": "api"}, "page": {"token": "bm90LW91cnM"}}`, status: 400, msg: "page.token is not a next_token of this search"},
		{name: "body too large", path: eval, body: `{"pad": "` + strings.Repeat("x", 64<<10) + `"}`, status: 413, msg: "larger than 65536 bytes"},
		{name: "not JSON content", path: eval, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}, status: 415, msg: "Content-Type: application/json"},
		{name: "GET an evaluation", method: http.MethodGet, path: eval, status: 405, msg: "accepts POST, not GET"},
		{name: "PUT a search", method: http.MethodPut, path: "/access/v1/search/subject", body: `{}`, status: 405, msg: "accepts POST, not PUT"},
		{name: "POST the metadata", path: "/.well-known/authzen-configuration", body: `{}`, status: 405, msg: "accepts GET, not POST"},
		{name: "unknown path", path: "/access/v2/evaluation", body: `{}`, status: 404, msg: "no AuthZEN endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			got := do(t, method, e.trusted+tt.path, tt.body, tt.header)
			if got.status != tt.status {
				t.Errorf("status %d, want %d (body %v)", got.status, tt.status, got.body)
			}
			if msg := errorMessage(t, got); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			if tt.status == 405 && got.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

// An error message never repeats the token it refused.
func TestErrorsHideTokens(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, nil)
	got := post(t, e.trusted+"/access/v1/evaluation", `{"subject": {"type": "workload", "id": "Bad Id", "properties": {"token": "`+tok+`"}},
		"action": {"name": "read"}, "resource": {"type": "api", "id": "api"}}`)
	if msg := errorMessage(t, got); got.status != 400 || strings.Contains(msg, tok[:20]) {
		t.Errorf("status %d, message %q", got.status, msg)
	}
}
