package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

// treaty runs the CLI in-process and returns its exit status and output.
func treaty(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyTestExample(t *testing.T) {
	code, out, errOut := treaty(t, "policy", "test", "../../examples/policies/acme.cases.json")
	if code != exitOK || !strings.Contains(out, "9 passed, 0 failed") || errOut != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = treaty(t, "policy", "test", "-o", "json", "../../examples/policies/acme.cases.json")
	var results []caseResult
	if err := json.Unmarshal([]byte(out), &results); code != exitOK || err != nil || len(results) != 9 || !results[1].Pass ||
		results[1].Reason != "policy_forbid:acme:acme-networks" {
		t.Fatalf("json: exit %d, %v: %s", code, err, out)
	}
}

func TestPolicyTestFailures(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "p.cedar", `@id("no-writes") forbid(principal, action == Action::"orders:write", resource);`)
	cases := writeFile(t, dir, "cases.json", `{"policy": "p.cedar", "partner": "acme",
		"defaults": {"workload": "w", "integration": "i", "resource": "api"},
		"cases": [
			{"name": "read", "action": "orders:read", "expect": "allow"},
			{"name": "write wrongly expected", "action": "orders:write", "expect": "allow"},
			{"name": "wrong reason", "action": "orders:write", "expect": "deny", "reason": "policy_forbid:acme:other"},
			{"name": "bad ip", "action": "orders:read", "expect": "allow", "context": {"source_ip": "nope"}}
		]}`)
	code, out, _ := treaty(t, "policy", "test", cases)
	for _, want := range []string{
		"PASS  read\n",
		"FAIL  write wrongly expected: got deny (policy_forbid:acme:no-writes)\n",
		"FAIL  wrong reason: got deny with reason policy_forbid:acme:no-writes, want reason policy_forbid:acme:other\n",
		`FAIL  bad ip: context.source_ip "nope" is not an IP address`,
		"1 passed, 3 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}

	bad := writeFile(t, dir, "bad.cedar", "permit(principal, action, resource);\nforbid(principal action, resource);")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad policy names the line", []string{"policy", "test", cases, "--policy", bad}, exitError, "bad.cedar: line 2, column"},
		{"missing file", []string{"policy", "test", filepath.Join(dir, "none.json")}, exitUsage, "no such file"},
		{"unknown field", []string{"policy", "test", writeFile(t, dir, "typo.json", `{"partner": "acme", "policy": "p.cedar", "cases": [{"expcet": "allow"}]}`)},
			exitUsage, `unknown field "expcet"`},
		{"no partner", []string{"policy", "test", writeFile(t, dir, "nopartner.json", `{"policy": "p.cedar", "cases": []}`)}, exitUsage, "names no partner"},
		{"no policy", []string{"policy", "test", writeFile(t, dir, "nopolicy.json", `{"partner": "acme", "cases": []}`)}, exitUsage, "names no policy file"},
		{"no args", []string{"policy", "test"}, exitUsage, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := treaty(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, errOut, tt.code, tt.msg)
			}
		})
	}
}

// registryServer serves a real registry (publishing into a real revoker) on loopback and returns
// its address, with partner acme created.
func registryServer(t *testing.T) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreatePartner(context.Background(), registry.Partner{ID: "acme", DisplayName: "Acme", OwnerTeam: "security",
		ContractEnd: time.Now().Add(24 * time.Hour)}, "alice", registry.CreateOptions{Activate: true, ApprovedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	conn := grpctest.Serve(t, registrysvc.New(registrysvc.Config{Registry: reg, Logger: quiet}).Register)
	return conn.Target()
}

func TestPolicyPutListGet(t *testing.T) {
	addr := registryServer(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "acme.cedar", `@id("no-writes") forbid(principal, action == Action::"orders:write", resource);`)
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}

	code, out, errOut := cli("policy", "put", "--partner", "acme", file)
	if code != exitOK || !strings.Contains(out, "acme@1") || !strings.Contains(out, "sequence:") {
		t.Fatalf("put: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli("policy", "put", "--partner", "acme", "--shadow", file); code != exitOK || !strings.Contains(out, "shadow") {
		t.Fatalf("put --shadow: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("policy", "list", "--partner", "acme")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[1], "acme@2") || !strings.Contains(lines[2], "live") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	code, out, _ = cli("policy", "get", "acme")
	if code != exitOK || !strings.Contains(out, "acme@1") || !strings.Contains(out, `@id("no-writes")`) {
		t.Fatalf("get: exit %d\n%s", code, out)
	}
	code, out, _ = cli("policy", "get", "acme@2", "-o", "json")
	var got struct {
		Policy struct {
			ID   string `json:"id"`
			Mode string `json:"mode"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got.Policy.ID != "acme@2" || got.Policy.Mode != "POLICY_MODE_SHADOW" {
		t.Fatalf("get -o json: exit %d, %v\n%s", code, err, out)
	}

	bad := writeFile(t, dir, "bad.cedar", "permit(principal, action, resource);\n\nforbid(principal, action resource);")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad policy names the line", []string{"policy", "put", "--partner", "acme", bad}, exitError, "line 3, column"},
		{"unknown partner", []string{"policy", "put", "--partner", "globex", file}, exitError, "NOT_FOUND"},
		{"no partner flag", []string{"policy", "put", file}, exitUsage, "--partner is required"},
		{"bad partner flag", []string{"policy", "put", "--partner", "Acme", file}, exitUsage, "not a valid id"},
		{"missing file", []string{"policy", "put", "--partner", "acme", filepath.Join(dir, "none.cedar")}, exitUsage, "no such file"},
		{"unknown version", []string{"policy", "get", "acme@9"}, exitError, "NOT_FOUND"},
		{"bad id", []string{"policy", "get", "ACME@1"}, exitUsage, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := cli(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, errOut, tt.code, tt.msg)
			}
		})
	}
}
