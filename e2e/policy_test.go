package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPolicies puts a partner's Cedar policy set through the CLI and sees the decision point
// apply it (over AuthZEN, with the request's source address), refuse a broken one naming the
// line, keep a shadow set from changing answers, and list and show the versions.
func TestPolicies(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	startServer(t, addr, "--data", filepath.Join(dir, "data"), "--http-listen", httpAddr)
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: dir}
	key := o.onboard("acme")
	tok := o.token("acme", key)
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ask := func(ip string, minSeq uint64) map[string]any {
		return evaluate(t, httpAddr, `{"subject": {"type": "workload", "id": "acme-bot", "properties": {"token": "`+tok+`"}},
			"action": {"name": "orders.read"}, "resource": {"type": "api", "id": "orders-api"},
			"context": {"source_ip": "`+ip+`", "min_sequence": `+uintString(minSeq)+`}}`)
	}

	networks := write("networks.cedar", `// Acme calls only from its own network.
@id("acme-networks")
forbid(principal in Partner::"acme", action, resource)
unless { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };
`)
	out := o.json(0, "policy", "put", "--partner", "acme", networks)
	seq := sequenceOf(t, out)
	if d := ask("10.1.2.3", seq); d["decision"] != true {
		t.Fatalf("from acme's network: %v, want an allow", d)
	}
	if d := ask("192.168.1.1", seq); d["decision"] != false || !strings.Contains(toJSON(d), "policy_forbid:acme@1:acme-networks") {
		t.Fatalf("from elsewhere: %v, want a deny by acme-networks", d)
	}

	broken := write("broken.cedar", "permit(principal, action, resource)\nwhen { context.source_ip.isInRange(ip(\"10.0.0.0/8\") };\n")
	r := o.run(1, "policy", "put", "--partner", "acme", broken)
	if !strings.Contains(r.stderr, "line 2") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("a broken policy: stderr %q, want one line naming line 2", r.stderr)
	}

	lockdown := write("lockdown.cedar", "@id(\"lockdown\")\nforbid(principal, action, resource);\n")
	out = o.json(0, "policy", "put", "--partner", "acme", "--shadow", lockdown)
	seq = sequenceOf(t, out)
	if d := ask("10.1.2.3", seq); d["decision"] != true {
		t.Fatalf("with a shadow set that forbids everything: %v, want the live answer (allow)", d)
	}

	list := o.run(0, "policy", "list", "--partner", "acme").stdout
	if !strings.Contains(list, "acme@1") || !strings.Contains(list, "acme@2") {
		t.Fatalf("policy list printed %q, want acme@1 and acme@2", list)
	}
	if got := o.run(0, "policy", "get", "acme@2").stdout; !strings.Contains(got, "lockdown") {
		t.Fatalf("policy get acme@2 printed %q, want the shadow text", got)
	}
}

func uintString(n uint64) string { return strconv.FormatUint(n, 10) }
