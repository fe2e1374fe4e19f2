package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The full lifecycle through the CLI: propose, approve, activate; request, approve, activate;
// suspend, reactivate, update, recertify; each refused step names the missing one.
func TestLifecycleCommands(t *testing.T) {
	addr := registryServer(t) // partner acme exists, active
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	ok := func(want string, args ...string) string {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d, want output containing %q\n%s%s", args, code, want, out, errOut)
		}
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		code, out, errOut := cli(args...)
		if code == exitOK || !strings.Contains(errOut, want) {
			t.Fatalf("%v: exit %d, want a refusal containing %q\n%s%s", args, code, want, out, errOut)
		}
	}

	ok("proposed", "partner", "create", "--id", "globex", "--name", "Globex", "--owner", "vendor-risk", "--contract-end", "2099-12-31",
		"--legal-name", "Globex Corporation", "--relationship", "saas", "--accountable-owner", "ana@example.com",
		"--security-contact", "soc@globex.example", "--breach-notice-hours", "72", "--contract-id", "C-7",
		"--contract-start", "2026-01-01", "--data-classification", "confidential", "--last-assessment", "2026-03-01",
		"--assessment-result", "passed", "--next-review", "2027-03-01", "--risk-tier", "high")
	refused("approve it first (treaty partner approve globex)", "partner", "activate", "globex")
	ok("approved", "partner", "approve", "globex", "--approved-by", "ciso@example.com")
	out := ok("active", "partner", "activate", "globex")
	for _, want := range []string{"Globex Corporation", "saas", "ana@example.com", "72h", "confidential", "C-7", "2026-01-01", "ciso@example.com"} {
		if !strings.Contains(out, want) {
			t.Errorf("partner fields do not show %q:\n%s", want, out)
		}
	}
	ok("active", "partner", "create", "--id", "quick", "--name", "Quick", "--owner", "ops", "--contract-end", "2099-12-31",
		"--activate", "--approved-by", "cto")

	ok("requested", "integration", "create", "--partner", "globex", "--id", "globex-api", "--environment", "staging",
		"--scopes", "read", "--audiences", "api", "--max-ttl", "5m", "--source-ranges", "10.0.0.0/8", "--purpose", "sync", "--owner", "data-team")
	refused("approve it first (treaty integration approve globex-api)", "integration", "activate", "globex-api")
	ok("SEC-1", "integration", "approve", "globex-api", "--ticket", "SEC-1")
	ok("active", "integration", "activate", "globex-api")
	ok("suspended", "integration", "suspend", "globex-api", "--reason", "leak")
	ok("active", "integration", "reactivate", "globex-api", "--reason", "rotated")
	ok("last recertified", "integration", "recertify", "globex-api", "--note", "q3 review")
	out = ok("write", "integration", "update", "globex-api", "--scopes", "read,write")
	if !strings.Contains(out, "10.0.0.0/8") || !strings.Contains(out, "staging") {
		t.Errorf("an update of the scopes changed other fields:\n%s", out)
	}
	ok("suspended", "partner", "suspend", "globex", "--reason", "audit")
	ok("active", "partner", "reactivate", "globex", "--reason", "cleared")
	ok("risk-office", "partner", "update", "globex", "--owner", "risk-office")

	// A stale etag is ABORTED.
	refused("ABORTED", "partner", "update", "globex", "--owner", "x", "--etag", "r1")
	refused("ABORTED", "integration", "update", "globex-api", "--owner", "x", "--etag", "r1")

	// Filters.
	out = ok("globex", "partner", "list", "--tier", "high")
	if strings.Contains(out, "acme") || strings.Contains(out, "quick") {
		t.Errorf("--tier high lists other partners:\n%s", out)
	}
	out = ok("quick", "partner", "list", "--state", "active", "--owner", "ops")
	if strings.Contains(out, "globex") {
		t.Errorf("--owner ops lists globex:\n%s", out)
	}
	ok("globex-api", "integration", "list", "--environment", "staging")
	if _, out, _ := cli("integration", "list", "--environment", "production"); strings.Contains(out, "globex-api") {
		t.Errorf("--environment production lists a staging integration:\n%s", out)
	}

	usage := []struct {
		args []string
		msg  string
	}{
		{[]string{"partner", "create", "--id", "x", "--name", "X", "--owner", "o", "--contract-end", "2099-01-01", "--activate"}, "--approved-by"},
		{[]string{"partner", "create", "--id", "x", "--name", "X", "--owner", "o", "--contract-end", "2099-01-01", "--relationship", "friend"}, "--relationship"},
		{[]string{"partner", "list", "--state", "asleep"}, "--state"},
		{[]string{"partner", "list", "--contract-end-before", "soon"}, "--contract-end-before"},
		{[]string{"partner", "update", "globex"}, "at least one field"},
		{[]string{"integration", "create", "--partner", "globex", "--id", "x", "--scopes", "a", "--audiences", "b", "--max-ttl", "1m"}, "--environment"},
		{[]string{"integration", "create", "--partner", "globex", "--id", "x", "--scopes", "a", "--audiences", "b", "--max-ttl", "1m", "--environment", "Prod"}, "--environment"},
		{[]string{"integration", "update", "globex-api", "--source-ranges", "nowhere"}, "--source-ranges"},
		{[]string{"integration", "suspend", "globex-api", "--reason", ""}, "--reason"},
		{[]string{"revoke", "credential", "x", "-o", "yaml"}, `-o must be table or json, not "yaml"`},
		{[]string{"partner", "list", "-o", "xml"}, "-o must be"},
	}
	for _, u := range usage {
		code, _, errOut := cli(u.args...)
		if code != exitUsage || !strings.Contains(errOut, u.msg) {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming %q", u.args, code, errOut, u.msg)
		}
	}
}

// -o json, yaml and csv give scripts the same records; the default is an aligned table.
func TestListOutputFormats(t *testing.T) {
	addr := registryServer(t)
	cli := func(args ...string) string {
		t.Helper()
		code, out, errOut := treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	cli("partner", "create", "--id", "globex", "--name", "Globex, Inc.", "--owner", "vendor-risk", "--contract-end", "2099-12-31")

	table := cli("partner", "list")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "RISK TIER") {
		t.Fatalf("table:\n%s", table)
	}
	if col := strings.Index(lines[0], "STATE"); col < 0 || !strings.HasPrefix(lines[1][col:], "active") || !strings.HasPrefix(lines[2][col:], "proposed") {
		t.Errorf("the table's columns are not aligned:\n%s", table)
	}

	var js struct {
		Partners []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"partners"`
	}
	if err := json.Unmarshal([]byte(cli("partner", "list", "-o", "json")), &js); err != nil || len(js.Partners) != 2 || js.Partners[1].State != "PARTNER_STATE_PROPOSED" {
		t.Errorf("json: %+v, %v", js, err)
	}
	var ym struct {
		Partners []struct {
			ID          string `yaml:"id"`
			DisplayName string `yaml:"display_name"`
		} `yaml:"partners"`
	}
	if err := yaml.Unmarshal([]byte(cli("partner", "list", "-o", "yaml")), &ym); err != nil || len(ym.Partners) != 2 || ym.Partners[1].DisplayName != "Globex, Inc." {
		t.Errorf("yaml: %+v, %v", ym, err)
	}
	rows, err := csv.NewReader(strings.NewReader(cli("partner", "list", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" || rows[2][0] != "globex" || rows[2][1] != "Globex, Inc." {
		t.Errorf("csv: %q, %v", rows, err)
	}
	rows, err = csv.NewReader(strings.NewReader(cli("partner", "get", "globex", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != "globex" {
		t.Errorf("get -o csv: %q, %v", rows, err)
	}
	if out := cli("partner", "get", "globex", "-o", "yaml"); !strings.Contains(out, "state: PARTNER_STATE_PROPOSED") {
		t.Errorf("get -o yaml:\n%s", out)
	}
}
