package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUsageErrors checks that malformed command lines exit 2 before anything reaches a server:
// the CLI points at an address where nothing listens, so a call would exit 1 instead.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	env := []string{"TREATY_SERVER=127.0.0.1:1"}
	dir := t.TempDir()
	tests := [][]string{
		{"nosuchcommand"},
		{"partner", "list", "--nosuchflag"},
		{"-o", "xml", "partner", "list"},
		{"-o", "yaml", "revoke", "partner", "acme", "--reason", "x"},
		{"partner", "create", "--id", "acme"},
		{"partner", "create", "--id", "Bad_ID", "--name", "x", "--owner", "y", "--contract-end", "2030-01-01"},
		{"partner", "create", "--id", "acme", "--name", "x", "--owner", "y", "--contract-end", "31/12/2030"},
		{"partner", "get"},
		{"partner", "get", "a", "b"},
		{"partner", "get", "NOT-AN-ID"},
		{"partner", "suspend", "acme", "--reason", ""},
		{"integration", "create", "--partner", "p", "--id", "i", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "0s"},
		{"integration", "create", "--partner", "p", "--id", "i", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "ten"},
		{"workload", "create", "--integration", "i", "--id", "w"},
		{"token", "--workload", "w", "--key", "k", "--scopes", "s", "--audience", "a", "--ttl", "-1m"},
		{"token", "--workload", "w", "--scopes", "s", "--audience", "a"},
		{"check", "--action", "a", "--resource", "r"},
		{"check", "--token", "t", "--token-file", "f", "--action", "a", "--resource", "r"},
		{"check", "--token", "t", "--resource", "r"},
		{"revoke", "partner", "acme"},
		{"revoke", "bogus", "acme", "--reason", "x"},
		{"revoke", "partner", "--reason", "x"},
		{"revoke", "credential", "has space", "--reason", "x"},
		{"restore", "credential", "jti", "--reason", "x"},
		{"watch", "--from", "-3"},
		{"keygen"},
		{"serve"},
		{"serve", "--data", dir, "--listen", "0.0.0.0:7433"},
		{"serve", "--data", dir, "--listen", ":7433"},
		{"serve", "--data", dir, "--services", "registry"},
		{"serve", "--data", dir, "--services", "nosuch"},
		{"serve", "--data", dir, "--issuer-url", "ftp://x"},
	}
	for _, args := range tests {
		r := treaty(t, env, "", args...)
		if r.code != 2 {
			t.Errorf("treaty %s: want exit 2, got %s", strings.Join(args, " "), r)
			continue
		}
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "treaty: ") || r.stdout != "" {
			t.Errorf("treaty %s: want one clear line on stderr and nothing on stdout, got %s", strings.Join(args, " "), r)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused serve wrote into the data folder: %v", entries)
	}
}

// TestServerErrors checks the exit status and gRPC status of each refusal a server gives.
func TestServerErrors(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	startServer(t, addr, "--data", t.TempDir())
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	key := o.onboard("acme")
	otherKey := o.onboard("globex")
	o.run(0, "partner", "create", "--id", "gone", "--name", "Gone", "--owner", "t", "--contract-end", "2099-01-01",
		"--activate", "--approved-by", "vendor-risk")
	o.run(0, "partner", "create", "--id", "fresh", "--name", "Fresh", "--owner", "t", "--contract-end", "2099-01-01")
	o.run(0, "partner", "offboard", "gone", "--reason", "contract terminated")
	past := time.Now().AddDate(0, 0, -2).Format(time.DateOnly)

	tests := []struct {
		args []string
		code string
	}{
		{[]string{"partner", "get", "nobody"}, "NOT_FOUND"},
		{[]string{"partner", "create", "--id", "acme", "--name", "x", "--owner", "y", "--contract-end", "2099-01-01"}, "ALREADY_EXISTS"},
		{[]string{"partner", "create", "--id", "late", "--name", "x", "--owner", "y", "--contract-end", past}, "INVALID_ARGUMENT"},
		{[]string{"partner", "suspend", "gone"}, "FAILED_PRECONDITION"},
		{[]string{"partner", "activate", "fresh"}, "FAILED_PRECONDITION"},
		{[]string{"partner", "reactivate", "acme", "--reason", "x"}, "FAILED_PRECONDITION"},
		{[]string{"partner", "update", "acme", "--owner", "x", "--etag", "r1"}, "ABORTED"},
		{[]string{"integration", "activate", "acme-api"}, "FAILED_PRECONDITION"},
		{[]string{"integration", "create", "--partner", "fresh", "--id", "i5", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "5m",
			"--activate", "--approved-by", "x"}, "FAILED_PRECONDITION"},
		{[]string{"integration", "create", "--partner", "nobody", "--id", "i1", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "5m"}, "NOT_FOUND"},
		{[]string{"integration", "create", "--partner", "acme", "--id", "i2", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "48h"}, "INVALID_ARGUMENT"},
		{[]string{"integration", "create", "--partner", "acme", "--id", "i3", "--environment", "production", "--scopes", `bad\scope`, "--audiences", "x", "--max-ttl", "5m"}, "INVALID_ARGUMENT"},
		{[]string{"integration", "create", "--partner", "gone", "--id", "i4", "--environment", "production", "--scopes", "a", "--audiences", "x", "--max-ttl", "5m"}, "FAILED_PRECONDITION"},
		{[]string{"workload", "create", "--integration", "acme-api", "--id", "w1", "--public-key", key}, "INVALID_ARGUMENT"},
		{[]string{"workload", "create", "--integration", "nobody", "--id", "w2", "--public-key", key + ".pub"}, "NOT_FOUND"},
		{[]string{"token", "--workload", "acme-bot", "--key", otherKey, "--scopes", "orders.read", "--audience", "orders-api"}, "UNAUTHENTICATED"},
		{[]string{"token", "--workload", "nobody", "--key", key, "--scopes", "orders.read", "--audience", "orders-api"}, "UNAUTHENTICATED"},
		{[]string{"token", "--workload", "acme-bot", "--key", key, "--scopes", "orders.read,admin", "--audience", "orders-api"}, "PERMISSION_DENIED"},
		{[]string{"token", "--workload", "acme-bot", "--key", key, "--scopes", "orders.read", "--audience", "hr-api"}, "PERMISSION_DENIED"},
		{[]string{"check", "--token", "x.y.z", "--action", "a", "--resource", "r", "--min-sequence", "999999", "--timeout", "20s"}, "UNAVAILABLE"},
		{[]string{"revoke", "key", "no-such-kid", "--reason", "x"}, "NOT_FOUND"},
		{[]string{"revoke", "workload", "nobody", "--reason", "x"}, "NOT_FOUND"},
		{[]string{"restore", "partner", "acme", "--reason", "x"}, "FAILED_PRECONDITION"},
		{[]string{"restore", "partner", "gone", "--reason", "x"}, "FAILED_PRECONDITION"},
		{[]string{"keygen", "--out", key}, ""},
		{[]string{"partner", "list", "--server", "127.0.0.1:1", "--timeout", "2s"}, ""},
	}
	for _, tc := range tests {
		r := treaty(t, o.d.env, "", tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.code) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("treaty %s: want exit 1 and one line naming %s, got %s", strings.Join(tc.args, " "), tc.code, r)
		}
	}

	// A credential the PDP cannot accept is a deny with a reason, never an error.
	o.wantReason(o.check("not-a-token", "orders.read", "orders-api", false, 0), "malformed_token")
	// A token read from stdin works like one on the command line.
	tok := o.token("acme", key)
	if r := treaty(t, o.d.env, tok+"\n", "check", "--token-file", "-", "--action", "orders.read", "--resource", "orders-api"); r.code != 0 {
		t.Errorf("check --token-file -: %s", r)
	}
	// A retried revocation with the same request id returns the original sequence.
	first := o.run(0, "revoke", "credential", "jti-1", "--reason", "leaked", "--request-id", "req-42").stdout
	again := o.run(0, "revoke", "credential", "jti-1", "--reason", "leaked", "--request-id", "req-42").stdout
	if first != again || strings.TrimSpace(first) == "" {
		t.Errorf("retried revoke printed %q then %q", first, again)
	}
}

func TestKeygen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "w.key")
	r := treaty(t, nil, "", "keygen", "--out", key)
	if r.code != 0 {
		t.Fatal(r)
	}
	for file, mode := range map[string]os.FileMode{key: 0o600, key + ".pub": 0o644} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", file, fi.Mode().Perm(), mode)
		}
	}
	priv, _ := os.ReadFile(key)
	pub, _ := os.ReadFile(key + ".pub")
	if !strings.HasPrefix(string(priv), "-----BEGIN PRIVATE KEY-----") || !strings.HasPrefix(string(pub), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("keygen wrote %q and %q", priv[:30], pub[:30])
	}
	if strings.Contains(r.stdout, string(priv)) {
		t.Error("keygen printed the private key")
	}
	if r := treaty(t, nil, "", "keygen", "--out", key); r.code != 1 {
		t.Errorf("keygen over an existing key: %s", r)
	}
	if r := treaty(t, nil, "", "keygen", "--out", key, "--force"); r.code != 0 {
		t.Errorf("keygen --force: %s", r)
	}
	if again, _ := os.ReadFile(key); string(again) == string(priv) {
		t.Error("keygen --force did not replace the key")
	}
}
