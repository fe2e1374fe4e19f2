package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

func pubFile(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

func TestRiskTierAuthMethodsAndWorkloadKeys(t *testing.T) {
	addr := registryServer(t)
	dir := t.TempDir()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed2, _, _ := ed25519.GenerateKey(rand.Reader)
	first, second, third := pubFile(t, dir, "a.pub", edPub), pubFile(t, dir, "b.pub", &ec.PublicKey), pubFile(t, dir, "c.pub", ed2)
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--registry", addr, "--actor", "alice")...)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"partner", "create", "--activate", "--approved-by", "ciso", "--id", "fort", "--name", "Fort", "--owner", "sec", "--contract-end", "2099-01-01", "--risk-tier", "high"}, "high"},
		{[]string{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "fort", "--id", "vault", "--scopes", "a", "--audiences", "api", "--max-ttl", "10m",
			"--sender-constraint", "dpop"}, "private_key_jwt,tls_client_auth,self_signed_tls_client_auth"},
		{[]string{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "orders", "--scopes", "a", "--audiences", "api", "--max-ttl", "10m",
			"--auth-methods", "client_secret_basic,private_key_jwt"}, "client_secret_basic,private_key_jwt"},
		{[]string{"workload", "create", "--integration", "vault", "--id", "bot", "--public-key", first}, "EdDSA:"},
		{[]string{"workload", "create", "--integration", "vault", "--id", "cert-bot", "--tls-subject-dn", "CN=cert-bot,O=Fort"}, "subject_dn=CN=cert-bot,O=Fort"},
		{[]string{"workload", "add-key", "--id", "bot", "--public-key", second}, "ES256:"},
	}
	for _, s := range steps {
		code, out, errOut := cli(s.args...)
		if code != exitOK || !strings.Contains(out, s.want) {
			t.Fatalf("%v: exit %d, want output containing %q\n%s%s", s.args, code, s.want, out, errOut)
		}
	}
	kid := keyIDs(t, cli)[0]

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad tier", []string{"partner", "create", "--activate", "--approved-by", "ciso", "--id", "x", "--name", "X", "--owner", "o", "--contract-end", "2099-01-01", "--risk-tier", "extreme"}, exitUsage, "--risk-tier"},
		{"bad method", []string{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "x", "--scopes", "a", "--audiences", "api", "--max-ttl", "1m", "--auth-methods", "password"}, exitUsage, "--auth-methods"},
		{"bad constraint", []string{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "acme", "--id", "x", "--scopes", "a", "--audiences", "api", "--max-ttl", "1m", "--sender-constraint", "maybe"}, exitUsage, "--sender-constraint"},
		{"secret on a high-tier partner", []string{"integration", "create", "--environment", "production", "--activate", "--approved-by", "ciso", "--partner", "fort", "--id", "x", "--scopes", "a", "--audiences", "api", "--max-ttl", "1m", "--auth-methods", "client_secret_post"}, exitError, "risk tier high"},
		{"no key and no subject", []string{"workload", "create", "--integration", "vault", "--id", "x"}, exitUsage, "--public-key is required"},
		{"third key", []string{"workload", "add-key", "--id", "bot", "--public-key", third}, exitError, "FAILED_PRECONDITION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := cli(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, errOut, tt.code, tt.msg)
			}
		})
	}

	// Rotation ends by removing the older key; the last one stays.
	if code, out, errOut := cli("workload", "remove-key", "--id", "bot", "--key-id", kid, "--reason", "rotation done"); code != exitOK || strings.Contains(out, kid) {
		t.Fatalf("remove-key: exit %d\n%s%s", code, out, errOut)
	}
	last := keyIDs(t, cli)
	if len(last) != 1 {
		t.Fatalf("keys after remove-key: %v", last)
	}
	if code, _, errOut := cli("workload", "remove-key", "--id", "bot", "--key-id", last[0], "--reason", "rotation done"); code != exitError || !strings.Contains(errOut, "last key") {
		t.Errorf("removing the last key: exit %d, %s", code, errOut)
	}
}

// keyIDs returns the key ids of workload bot, as `workload get -o json` shows them.
func keyIDs(t *testing.T, cli func(...string) (int, string, string)) []string {
	t.Helper()
	code, out, errOut := cli("workload", "get", "bot", "-o", "json")
	var got struct {
		Workload struct {
			PublicKeys []struct {
				KeyID string `json:"key_id"`
			} `json:"public_keys"`
		} `json:"workload"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitOK {
		t.Fatalf("workload get: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	var ids []string
	for _, k := range got.Workload.PublicKeys {
		ids = append(ids, k.KeyID)
	}
	if len(ids) == 0 {
		t.Fatalf("no key ids in %s", out)
	}
	return ids
}
