package extauthz_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/services/extauthz"
)

// A route table that would match the wrong requests is refused when loaded.
func TestLoadRoutesRefuses(t *testing.T) {
	tests := []struct{ name, file, msg string }{
		{"not JSON", `routes: []`, "invalid character"},
		{"misspelt member", `{"routes": [{"method": "GET", "prefx": "/v1", "action": "read", "resource": "api"}]}`, `unknown field "prefx"`},
		{"no routes", `{"routes": []}`, "no routes"},
		{"path and prefix", `{"routes": [{"path": "/a", "prefix": "/a", "action": "read", "resource": "api"}]}`, "routes[0]: give exactly one of path and prefix"},
		{"neither", `{"routes": [{"action": "read", "resource": "api"}]}`, "give exactly one of path and prefix"},
		{"relative path", `{"routes": [{"path": "v1/orders", "action": "read", "resource": "api"}]}`, "must start with /"},
		{"dot segment", `{"routes": [{"prefix": "/v1/../admin", "action": "read", "resource": "api"}]}`, "no empty, . or .. segments"},
		{"lower-case method", `{"routes": [{"method": "get", "prefix": "/", "action": "read", "resource": "api"}]}`, "upper-case HTTP method"},
		{"bad action", `{"routes": [{"prefix": "/", "action": "read all", "resource": "api"}]}`, "must be a scope name"},
		{"no resource", `{"routes": [{"prefix": "/", "action": "read"}]}`, "resource is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "routes.json")
			if err := os.WriteFile(file, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := extauthz.LoadRoutes(file)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("LoadRoutes: %v, want an error containing %q", err, tt.msg)
			}
		})
	}
	if _, err := extauthz.LoadRoutes(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadRoutes of a missing file succeeded")
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := extauthz.New(extauthz.Config{Routes: []extauthz.Route{{Prefix: "/", Action: "read", Resource: "api"}}}); err == nil {
		t.Error("New without a PDP succeeded")
	}
}
