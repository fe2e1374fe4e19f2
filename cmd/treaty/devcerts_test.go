package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/certs"
)

func TestDevCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	p := func(name string) string { return filepath.Join(dir, name) }

	code, out, errOut := treaty(t, "dev-certs", "--out", dir, "--identity", "admin", "--identity", "ops", "--host", "localhost,treaty.internal")
	if code != exitOK {
		t.Fatalf("dev-certs: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"treaty serve --tls-cert " + p("server.pem") + " --tls-key " + p("server-key.pem") + " --client-ca " + p("ca.pem") + " --ca " + p("ca.pem"),
		"treaty --cert " + p("admin.pem") + " --key " + p("admin-key.pem") + " --ca " + p("ca.pem"),
		"treaty --cert " + p("ops.pem") + " --key " + p("ops-key.pem") + " --ca " + p("ca.pem"),
		"localhost, treaty.internal",
		certs.ServiceName,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for name, mode := range map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "server.pem": 0o644,
		"server-key.pem": 0o600, "admin.pem": 0o644, "admin-key.pem": 0o600, "ops.pem": 0o644, "ops-key.pem": 0o600} {
		if fi, err := os.Stat(p(name)); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, want mode %v", name, err, mode)
		}
	}
	// The flags it prints work.
	if _, err := certs.Load(p("server.pem"), p("server-key.pem"), p("ca.pem"), p("ca.pem")); err != nil {
		t.Error(err)
	}
	if _, err := certs.ClientConfig(p("admin.pem"), p("admin-key.pem"), p("ca.pem")); err != nil {
		t.Error(err)
	}

	ca, _ := os.ReadFile(p("ca.pem"))
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"refuses to overwrite", []string{"dev-certs", "--out", dir}, exitError, "ca.pem exists; use --force to overwrite it"},
		{"no --out", []string{"dev-certs"}, exitUsage, "--out is required"},
		{"bad identity", []string{"dev-certs", "--out", t.TempDir(), "--identity", "../x"}, exitError, `identity "../x"`},
		{"arguments", []string{"dev-certs", "--out", dir, "extra"}, exitUsage, "takes no arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := treaty(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, tt.code, tt.msg, out, errOut)
			}
		})
	}
	if now, _ := os.ReadFile(p("ca.pem")); string(now) != string(ca) {
		t.Error("a refused dev-certs replaced ca.pem")
	}

	code, out, errOut = treaty(t, "dev-certs", "--out", dir, "--force", "-o", "json")
	if code != exitOK {
		t.Fatalf("dev-certs --force: exit %d\n%s%s", code, out, errOut)
	}
	var got struct {
		CA      string `json:"ca"`
		Service string `json:"service_identity"`
		Clients []struct{ Name, Cert, Key string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.CA != p("ca.pem") || got.Service != certs.ServiceName || len(got.Clients) != 1 || got.Clients[0].Name != "admin" ||
		got.Clients[0].Key != p("admin-key.pem") {
		t.Errorf("json %+v", got)
	}
	if now, _ := os.ReadFile(p("ca.pem")); string(now) == string(ca) {
		t.Error("dev-certs --force kept ca.pem")
	}
}
