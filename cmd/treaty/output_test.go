package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every command that prints records or lists takes -o table, json, yaml and csv through the one
// renderer: yaml is the json re-rendered, document for document, and csv has a header row and a
// row per record.
func TestRecordOutputFormats(t *testing.T) {
	_, _, _, addr := auditServer(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "bot.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	policyFile := writeFile(t, dir, "acme.cedar", `permit (principal, action, resource);`)
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	for _, a := range [][]string{
		{"partner", "create", "--id", "acme", "--name", "Acme", "--owner", "security", "--contract-end", "2099-12-31", "--activate", "--approved-by", "ciso"},
		{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "orders", "--scopes", "orders:read", "--audiences", "api", "--max-ttl", "10m"},
		{"workload", "create", "--integration", "orders", "--id", "bot", "--public-key", keyFile},
		{"workload", "secret", "create", "bot"},
		{"policy", "put", "--partner", "acme", policyFile},
	} {
		if code, out, errOut := cli(a...); code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", a, code, out, errOut)
		}
	}

	tests := []struct {
		args     []string
		csvFirst string // the first column's header
		rows     int    // records at least
		jsonLine bool   // -o json prints JSON lines
	}{
		{[]string{"partner", "list"}, "id", 1, false},
		{[]string{"partner", "get", "acme"}, "id", 1, false},
		{[]string{"integration", "list"}, "id", 1, false},
		{[]string{"integration", "get", "orders"}, "id", 1, false},
		{[]string{"workload", "list"}, "id", 1, false},
		{[]string{"workload", "get", "bot"}, "id", 1, false},
		{[]string{"workload", "secret", "list", "bot"}, "id", 1, false},
		{[]string{"policy", "list"}, "id", 1, false},
		{[]string{"policy", "get", "acme"}, "id", 1, false},
		{[]string{"audit", "list"}, "seq", 4, true},
		{[]string{"audit", "verify"}, "status", 1, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			run := func(format string) string {
				t.Helper()
				code, out, errOut := cli(append(tt.args, "-o", format)...)
				if code != exitOK {
					t.Fatalf("-o %s: exit %d\n%s%s", format, code, out, errOut)
				}
				return out
			}
			var fromJSON []any
			if tt.jsonLine {
				for _, line := range strings.Split(strings.TrimSpace(run("json")), "\n") {
					var v any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Fatalf("-o json line %q: %v", line, err)
					}
					fromJSON = append(fromJSON, v)
				}
			} else {
				var v any
				if err := json.Unmarshal([]byte(run("json")), &v); err != nil {
					t.Fatalf("-o json: %v", err)
				}
				fromJSON = []any{v}
			}
			var fromYAML []any
			dec := yaml.NewDecoder(strings.NewReader(run("yaml")))
			for {
				var v any
				if err := dec.Decode(&v); err != nil {
					break
				}
				fromYAML = append(fromYAML, v)
			}
			if !reflect.DeepEqual(normalize(fromJSON), normalize(fromYAML)) {
				t.Errorf("-o yaml is not -o json:\njson %v\nyaml %v", fromJSON, fromYAML)
			}
			rows, err := csv.NewReader(strings.NewReader(run("csv"))).ReadAll()
			if err != nil || len(rows) < 1+tt.rows || rows[0][0] != tt.csvFirst {
				t.Errorf("-o csv: %q, %v", rows, err)
			}
			table := run("table")
			if text := run("text"); text != table || table == "" {
				t.Errorf("-o table and -o text differ:\n%s\n%s", table, text)
			}
		})
	}
}

// normalize turns YAML's and JSON's numbers and maps into one form.
func normalize(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// Single values and streams take table or json, and say so; an unknown format names them all.
func TestOutputUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"token", "-o", "csv", "--workload", "w", "--key", "k", "--scopes", "s", "--audience", "a"}, `token: -o must be table or json, not "csv"`},
		{[]string{"watch", "-o", "yaml"}, `watch: -o must be table or json, not "yaml"`},
		{[]string{"decisions", "tail", "-o", "csv"}, `-o must be table or json`},
		{[]string{"revoke", "partner", "acme", "--reason", "x", "-o", "csv"}, `revoke: -o must be table or json, not "csv" (it prints a feed sequence`},
		{[]string{"revoke", "all", "--head", "--reason", "x", "-o", "yaml"}, `revoke all: -o must be table or json`},
		{[]string{"export", "-o", "csv"}, `export: -o must be yaml or json, not "csv"`},
		{[]string{"audit", "export", "-o", "table"}, `audit export: -o must be json, not "table"`},
		{[]string{"partner", "list", "-o", "xml"}, `partner list: -o must be table, json, yaml or csv, not "xml"`},
	} {
		code, out, errOut := runCLI(append(tt.args, "--server", "127.0.0.1:1")...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tt.msg) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 naming %q", tt.args, code, out, errOut, tt.msg)
		}
	}
}
