package main

import (
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for _, tt := range []struct{ shell, marker string }{
		{"bash", "__start_treaty"},
		{"zsh", "#compdef treaty"},
		{"fish", "complete -c treaty"},
		{"powershell", "Register-ArgumentCompleter"},
	} {
		code, out, errOut := runCLI("completion", tt.shell)
		if code != exitOK || !strings.Contains(out, tt.marker) || errOut != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script has no %q", tt.shell, code, errOut, tt.marker)
		}
	}
}

// complete runs `treaty __complete args...` (what the shell scripts call) and returns the
// candidates, without the directive line.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	code, out, _ := runCLI(append([]string{"__complete"}, args...)...)
	if code != exitOK {
		t.Fatalf("__complete %v: exit %d\n%s", args, code, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, ":") {
			got = append(got, strings.SplitN(line, "\t", 2)[0])
		}
	}
	return got
}

func TestDynamicCompletion(t *testing.T) {
	addr := registryServer(t) // with partner acme
	if code, out, errOut := runCLI("--registry", addr, "partner", "create", "--id", "globex", "--name", "Globex", "--owner", "o", "--contract-end", "2099-01-01"); code != exitOK {
		t.Fatalf("partner create: %d\n%s%s", code, out, errOut)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"partner states", []string{"partner", "list", "--state", ""}, "proposed approved active suspended offboarding terminated"},
		{"integration states", []string{"integration", "list", "--state", ""}, "requested approved active suspended retired"},
		{"delivery states", []string{"notify", "deliveries", "--state", ""}, "pending delivered dead"},
		{"tiers", []string{"partner", "list", "--tier", ""}, "low medium high critical"},
		{"risk tiers on create", []string{"partner", "create", "--risk-tier", ""}, "low medium high critical"},
		{"sender constraints", []string{"integration", "update", "x", "--sender-constraint", ""}, "none dpop mtls dpop_or_mtls"},
		{"record outputs", []string{"partner", "list", "-o", ""}, "table json yaml csv"},
		{"value outputs", []string{"token", "--output", ""}, "table json"},
		{"export outputs", []string{"export", "-o", ""}, "yaml json"},
		{"partner ids", []string{"--registry", addr, "partner", "get", ""}, "acme globex"},
		{"partner ids by prefix", []string{"--registry", addr, "partner", "suspend", "gl"}, "globex"},
		{"one id only", []string{"--registry", addr, "partner", "get", "acme", ""}, ""},
		{"partner flag", []string{"--registry", addr, "integration", "list", "--partner", "a"}, "acme"},
		{"kill switch kinds", []string{"restore", ""}, "workload integration partner"},
		{"kill switch ids", []string{"--registry", addr, "revoke", "partner", ""}, "acme globex"},
		{"no server, no ids, quietly", []string{"--registry", "127.0.0.1:1", "partner", "get", ""}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(complete(t, tt.args...), " "); got != tt.want {
				t.Errorf("__complete %v = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
