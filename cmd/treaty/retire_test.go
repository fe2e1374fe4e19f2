package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestRetireIntegrationAndWorkload(t *testing.T) {
	addr := registryServer(t)
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "bot.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	for _, a := range [][]string{
		{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "orders", "--scopes", "orders:read", "--audiences", "api", "--max-ttl", "10m"},
		{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "billing", "--scopes", "bills:read", "--audiences", "api", "--max-ttl", "10m"},
		{"workload", "create", "--integration", "orders", "--id", "bot", "--public-key", keyFile},
	} {
		if code, out, errOut := cli(a...); code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", a, code, out, errOut)
		}
	}

	code, out, errOut := cli("workload", "retire", "bot", "--reason", "key leaked")
	if code != exitOK || !strings.Contains(out, "retired") || !strings.Contains(out, "sequence:") {
		t.Fatalf("workload retire: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("integration", "retire", "billing", "--reason", "unused", "-o", "json")
	if code != exitOK || !strings.Contains(out, `"INTEGRATION_STATE_RETIRED"`) || !strings.Contains(out, `"sequence"`) {
		t.Fatalf("integration retire -o json: exit %d\n%s%s", code, out, errOut)
	}

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"reason required", []string{"integration", "retire", "orders"}, exitUsage, "--reason is required"},
		{"reason empty", []string{"workload", "retire", "bot", "--reason", ""}, exitUsage, "--reason must not be empty"},
		{"bad id", []string{"workload", "retire", "Bot", "--reason", "r"}, exitUsage, "not valid"},
		{"no id", []string{"integration", "retire", "--reason", "r"}, exitUsage, "usage"},
		{"already retired", []string{"workload", "retire", "bot", "--reason", "again"}, exitError, "already retired"},
		{"unknown", []string{"integration", "retire", "nothing", "--reason", "r"}, exitError, "NOT_FOUND"},
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
