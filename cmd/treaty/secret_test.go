package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
)

func TestWorkloadSecrets(t *testing.T) {
	addr := registryServer(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, t.TempDir(), "bot.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	for _, a := range [][]string{
		{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "orders", "--scopes", "orders:read", "--audiences", "api", "--max-ttl", "10m"},
		{"workload", "create", "--integration", "orders", "--id", "bot", "--public-key", keyFile},
	} {
		if code, out, errOut := cli(a...); code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", a, code, out, errOut)
		}
	}

	code, out, errOut := cli("workload", "secret", "create", "bot", "--ttl", "7d")
	secret := regexp.MustCompile(`secret:\s+(treaty_cs_\S+)`).FindStringSubmatch(out)
	id := regexp.MustCompile(`id:\s+(cs-[0-9a-f]+)`).FindStringSubmatch(out)
	if code != exitOK || secret == nil || id == nil || !strings.Contains(errOut, "not shown again") {
		t.Fatalf("secret create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("workload", "secret", "list", "bot")
	if code != exitOK || !strings.Contains(out, id[1]) || strings.Contains(out, secret[1]) || strings.Contains(out, "treaty_cs_") {
		t.Fatalf("secret list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("workload", "secret", "revoke", "bot", id[1], "--reason", "rotated", "-o", "json")
	if code != exitOK || !strings.Contains(out, `"revoke_time"`) {
		t.Fatalf("secret revoke: exit %d\n%s%s", code, out, errOut)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad ttl", []string{"workload", "secret", "create", "bot", "--ttl", "soon"}, exitUsage, "--ttl"},
		{"ttl over 90 days", []string{"workload", "secret", "create", "bot", "--ttl", "91d"}, exitError, "at most 90 days"},
		{"unknown workload", []string{"workload", "secret", "create", "nobody"}, exitError, "NOT_FOUND"},
		{"unknown secret", []string{"workload", "secret", "revoke", "bot", "cs-0", "--reason", "rotated"}, exitError, "NOT_FOUND"},
		{"revoke without a reason", []string{"workload", "secret", "revoke", "bot", "cs-0"}, exitUsage, "--reason is required"},
		{"remove-key without a reason", []string{"workload", "remove-key", "--id", "bot", "--key-id", "x"}, exitUsage, "--reason is required"},
		{"bad workload id", []string{"workload", "secret", "list", "Bot"}, exitUsage, "not valid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.msg) {
				t.Errorf("exit %d, want %d with %q\n%s%s", code, tt.code, tt.msg, out, errOut)
			}
		})
	}
}
