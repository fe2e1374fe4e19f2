package authzen_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// Each search pages through its results with page.limit and page.token until next_token is empty.
// acme-ops is suspended and initech is blocked, so neither holds grants.
func TestSearch(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		path  string
		query string // the request's members besides page
		all   string // every result, in order
	}{
		{
			name:  "subjects that may read api",
			path:  "/access/v1/search/subject",
			query: `"subject": {"type": "workload"}, "action": {"name": "read"}, "resource": {"type": "api", "id": "api"}`,
			all:   `[{"type": "workload", "id": "acme-bot"}, {"type": "workload", "id": "acme-cron"}, {"type": "workload", "id": "globex-bot"}]`,
		},
		{
			name:  "resources acme-bot may write",
			path:  "/access/v1/search/resource",
			query: `"subject": {"type": "workload", "id": "acme-bot"}, "action": {"name": "write"}, "resource": {"type": "api"}`,
			all:   `[{"type": "api", "id": "api"}, {"type": "api", "id": "billing"}]`,
		},
		{
			name:  "actions acme-bot may perform on billing",
			path:  "/access/v1/search/action",
			query: `"subject": {"type": "workload", "id": "acme-bot"}, "resource": {"type": "api", "id": "billing"}, "context": {"environment": "production"}`,
			all:   `[{"name": "read"}, {"name": "write"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// All at once: the only page's next_token is empty.
			all := parse(t, tt.all).([]any)
			total := len(all)
			expect(t, post(t, e.trusted+tt.path, `{`+tt.query+`}`), http.StatusOK,
				`{"page": {"next_token": "", "count": `+strconv.Itoa(total)+`, "total": `+strconv.Itoa(total)+`}, "context": {"sequence": true}, "results": `+tt.all+`}`)

			// One at a time, in the same order, until next_token is empty.
			token := ""
			for i := 0; i < total; i++ {
				page := `"page": {"limit": 1}`
				if token != "" {
					page = `"page": {"limit": 1, "token": "` + token + `"}`
				}
				got := post(t, e.trusted+tt.path, `{`+tt.query+`, `+page+`}`)
				if got.status != http.StatusOK {
					t.Fatalf("page %d: status %d: %v", i, got.status, got.body)
				}
				body := got.body.(map[string]any)
				pg := body["page"].(map[string]any)
				if pg["count"] != 1.0 || pg["total"] != float64(total) {
					t.Errorf("page %d: %v", i, pg)
				}
				if diff := cmp.Diff(all[i:i+1], body["results"]); diff != "" {
					t.Errorf("page %d (-want +got):\n%s", i, diff)
				}
				token = pg["next_token"].(string)
				if (token == "") != (i == total-1) {
					t.Fatalf("page %d of %d: next_token %q", i, total, token)
				}
			}
		})
	}
	// The first query with limit 2 matches the pages above exactly.
	t.Run("pages of two", func(t *testing.T) {
		q := `"subject": {"type": "workload"}, "action": {"name": "read"}, "resource": {"type": "api", "id": "api"}`
		got := post(t, e.trusted+"/access/v1/search/subject", `{`+q+`, "page": {"limit": 2}}`)
		token := got.body.(map[string]any)["page"].(map[string]any)["next_token"].(string)
		expect(t, got, http.StatusOK, `{"page": {"next_token": "`+token+`", "count": 2, "total": 3}, "context": {"sequence": true},
			"results": [{"type": "workload", "id": "acme-bot"}, {"type": "workload", "id": "acme-cron"}]}`)
		expect(t, post(t, e.trusted+"/access/v1/search/subject", `{`+q+`, "page": {"limit": 2, "token": "`+token+`"}}`), http.StatusOK,
			`{"page": {"next_token": "", "count": 1, "total": 3}, "context": {"sequence": true}, "results": [{"type": "workload", "id": "globex-bot"}]}`)
		// The token belongs to that query and limit only.
		got = post(t, e.trusted+"/access/v1/search/subject", `{`+q+`, "page": {"limit": 3, "token": "`+token+`"}}`)
		if got.status != http.StatusBadRequest {
			t.Errorf("a token with another limit: status %d, want 400", got.status)
		}
	})
}

func TestSearchFindsNothing(t *testing.T) {
	e := newEnv(t)
	none := `{"page": {"next_token": "", "count": 0, "total": 0}, "context": {"sequence": true}, "results": []}`
	for _, tt := range []struct{ name, path, body string }{
		{"unknown workload", "/access/v1/search/action", `{"subject": {"type": "workload", "id": "nobody"}, "resource": {"type": "api", "id": "api"}}`},
		{"suspended workload", "/access/v1/search/action", `{"subject": {"type": "workload", "id": "acme-ops"}, "resource": {"type": "api", "id": "api"}}`},
		{"blocked partner", "/access/v1/search/resource", `{"subject": {"type": "workload", "id": "initech-bot"}, "action": {"name": "read"}, "resource": {"type": "api"}}`},
		{"scope outside the ceiling", "/access/v1/search/resource", `{"subject": {"type": "workload", "id": "globex-bot"}, "action": {"name": "write"}, "resource": {"type": "api"}}`},
		{"nobody may", "/access/v1/search/subject", `{"subject": {"type": "workload"}, "action": {"name": "admin"}, "resource": {"type": "api", "id": "api"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) { expect(t, post(t, e.trusted+tt.path, tt.body), http.StatusOK, none) })
	}
}

// Searches list other workloads' grants: an untrusted caller is refused.
func TestSearchUntrusted(t *testing.T) {
	e := newEnv(t)
	got := post(t, e.untrusted+"/access/v1/search/subject", `{"subject": {"type": "workload"}, "action": {"name": "read"}, "resource": {"type": "api", "id": "api"}}`)
	if got.status != http.StatusForbidden {
		t.Errorf("status %d, want 403", got.status)
	}
	errorMessage(t, got)
}
