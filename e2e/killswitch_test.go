package e2e

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deployment is a running Treaty: one process or several.
type deployment struct {
	env     []string // how the CLI reaches it
	restart func()
}

// operator runs CLI commands against a deployment and checks their outcomes.
type operator struct {
	t   *testing.T
	d   deployment
	dir string
}

// run runs a command and fails the test unless it exits with want.
func (o *operator) run(want int, args ...string) result {
	o.t.Helper()
	r := treaty(o.t, o.d.env, "", args...)
	if r.code != want {
		o.t.Fatalf("treaty %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// json runs a command with -o json, expecting exit want, and decodes its output.
func (o *operator) json(want int, args ...string) map[string]any {
	o.t.Helper()
	r := o.run(want, append([]string{"-o", "json"}, args...)...) // first: args may end with "--" ID
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		o.t.Fatalf("treaty %s -o json printed %q: %v", strings.Join(args, " "), r.stdout, err)
	}
	return out
}

// onboard registers a partner with one integration and one workload through the full lifecycle
// (propose, approve, activate; request, approve, activate), returning the workload's key.
func (o *operator) onboard(partner string) string {
	o.t.Helper()
	key := filepath.Join(o.dir, partner+".key")
	o.run(0, "keygen", "--out", key)
	end := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	o.run(0, "partner", "create", "--id", partner, "--name", strings.ToUpper(partner)+" Inc", "--owner", "team-"+partner, "--contract-end", end)
	o.run(0, "partner", "approve", partner, "--approved-by", "vendor-risk")
	o.run(0, "partner", "activate", partner)
	o.run(0, "integration", "create", "--partner", partner, "--id", partner+"-api", "--environment", "production",
		"--scopes", "orders.read,orders.write", "--audiences", "orders-api,billing-api", "--max-ttl", "10m")
	o.run(0, "integration", "approve", partner+"-api", "--ticket", "SEC-1")
	o.run(0, "integration", "activate", partner+"-api")
	o.run(0, "workload", "create", "--integration", partner+"-api", "--id", partner+"-bot", "--public-key", key+".pub")
	return key
}

func (o *operator) token(partner, key string, extra ...string) string {
	o.t.Helper()
	r := o.run(0, append([]string{"token", "--workload", partner + "-bot", "--key", key, "--scopes", "orders.read", "--audience", "orders-api"}, extra...)...)
	tok := strings.TrimSpace(r.stdout)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		o.t.Fatalf("token printed %q, want a JWT alone", r.stdout)
	}
	return tok
}

// check asks the PDP and returns the decision's reasons, failing unless the decision and exit
// status match.
func (o *operator) check(tok, action, resource string, allow bool, minSeq uint64) []string {
	o.t.Helper()
	want, decision := 3, "deny"
	if allow {
		want, decision = 0, "allow"
	}
	args := []string{"check", "--token", tok, "--action", action, "--resource", resource}
	if minSeq > 0 {
		args = append(args, "--min-sequence", strconv.FormatUint(minSeq, 10))
	}
	out := o.json(want, args...)
	if out["decision"] != decision {
		o.t.Fatalf("check %s on %s: decision %v, want %s (%v)", action, resource, out["decision"], decision, out)
	}
	if _, ok := out["sequence"].(float64); !ok {
		o.t.Fatalf("check printed no sequence: %v", out)
	}
	var reasons []string
	for _, r := range out["reasons"].([]any) {
		reasons = append(reasons, r.(string))
	}
	return reasons
}

func (o *operator) wantReason(reasons []string, want string) {
	o.t.Helper()
	if !slices.Contains(reasons, want) {
		o.t.Fatalf("reasons %v, want %q among them", reasons, want)
	}
}

func sequenceOf(t *testing.T, out map[string]any) uint64 {
	t.Helper()
	var seq uint64
	switch v := out["sequence"].(type) {
	case float64:
		seq = uint64(v)
	case string: // protojson writes 64-bit integers as strings
		seq, _ = strconv.ParseUint(v, 10, 64)
	}
	if seq == 0 {
		t.Fatalf("no sequence in %v", out)
	}
	return seq
}

// killSwitchScenario is the foundation's acceptance scenario: onboard, token, allow, deny what the
// token lacks, revoke the partner, deny (also after a restart, with no new token issued),
// restore, old token still denied, new token allowed; another partner unaffected throughout.
func killSwitchScenario(t *testing.T, d deployment) {
	o := &operator{t: t, d: d, dir: t.TempDir()}
	acmeKey := o.onboard("acme")
	globexKey := o.onboard("globex")

	old := o.token("acme", acmeKey)
	globex := o.token("globex", globexKey)
	o.wantReason(o.check(old, "orders.read", "orders-api", true, 0), "granted")
	o.wantReason(o.check(globex, "orders.read", "orders-api", true, 0), "granted")

	// What the token lacks is denied: a scope it was not given, an audience it is not for.
	o.wantReason(o.check(old, "orders.write", "orders-api", false, 0), "scope_missing")
	o.wantReason(o.check(old, "orders.read", "billing-api", false, 0), "audience_mismatch")

	// The kill switch: the returned sequence makes the next check read the revocation.
	revoked := sequenceOf(t, o.json(0, "revoke", "partner", "acme", "--reason", "suspected compromise"))
	o.wantReason(o.check(old, "orders.read", "orders-api", false, revoked), "partner_blocked")
	o.wantReason(o.check(globex, "orders.read", "orders-api", true, revoked), "granted")

	// A restart changes nothing: still denied, and the issuer mints nothing for the partner.
	d.restart()
	o.wantReason(o.check(old, "orders.read", "orders-api", false, revoked), "partner_blocked")
	refused := o.run(1, "token", "--workload", "acme-bot", "--key", acmeKey, "--scopes", "orders.read", "--audience", "orders-api")
	if !strings.Contains(refused.stderr, "PERMISSION_DENIED") || !strings.Contains(refused.stderr, "partner_blocked") {
		t.Fatalf("token for a blocked partner: %s", refused)
	}
	o.wantReason(o.check(globex, "orders.read", "orders-api", true, 0), "granted")

	// Restore: the block becomes a watermark. The old token stays dead; a new one works.
	restored := sequenceOf(t, o.json(0, "restore", "partner", "acme", "--reason", "investigation closed"))
	if restored <= revoked {
		t.Fatalf("restore at %d, not after the revocation at %d", restored, revoked)
	}
	o.wantReason(o.check(old, "orders.read", "orders-api", false, restored), "partner_revoked")
	fresh := o.token("acme", acmeKey, "--min-sequence", strconv.FormatUint(restored, 10))
	o.wantReason(o.check(fresh, "orders.read", "orders-api", true, restored), "granted")
	o.wantReason(o.check(globex, "orders.read", "orders-api", true, 0), "granted")

	// The feed holds the story, in order: from the revocation on, the block then the restore.
	events := watch(t, d.env, 2, "--from", strconv.FormatUint(revoked, 10))
	for i, want := range []struct {
		seq          uint64
		kind, reason string
	}{{revoked, "blocked", "suspected compromise"}, {restored, "restored", "investigation closed"}} {
		ev := events[i]
		if uint64(ev["sequence"].(float64)) != want.seq || ev["kind"] != want.kind || ev["target"] != "partner/acme" || ev["reason"] != want.reason {
			t.Fatalf("watch event %d = %v, want %s partner/acme at %d", i, ev, want.kind, want.seq)
		}
		if _, err := time.Parse(time.RFC3339, ev["time"].(string)); err != nil {
			t.Fatalf("watch event time %v: %v", ev["time"], err)
		}
	}
}

func TestKillSwitchOneProcess(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	srv := startServer(t, addr, "--data", t.TempDir())
	killSwitchScenario(t, deployment{env: []string{"TREATY_SERVER=" + addr}, restart: srv.restart})
}

func TestKillSwitchFourProcesses(t *testing.T) {
	t.Parallel()
	addrs := map[string]string{}
	for _, name := range []string{"registry", "issuer", "pdp", "revoker"} {
		addrs[name] = freeAddr(t)
	}
	start := func(name string, peers ...string) *server {
		args := []string{"--data", filepath.Join(t.TempDir(), name), "--services", name}
		for _, p := range peers {
			args = append(args, "--"+p, addrs[p])
		}
		return startServer(t, addrs[name], args...)
	}
	revoker := start("revoker", "issuer")
	pdp := start("pdp", "revoker")
	registry := start("registry", "revoker")
	issuer := start("issuer", "registry", "pdp", "revoker")
	var env []string
	for name, addr := range addrs {
		env = append(env, "TREATY_"+strings.ToUpper(name)+"="+addr)
	}
	env = append(env, "TREATY_SERVER=127.0.0.1:1") // nothing listens there: every call must be routed per service
	killSwitchScenario(t, deployment{env: env, restart: func() {
		for _, s := range []*server{revoker, pdp, registry, issuer} {
			s.stop()
		}
		for _, s := range []*server{revoker, pdp, registry, issuer} {
			s.start()
		}
	}})
}

// TestWatchLive checks that watch without --from prints only what happens after it connects.
func TestWatchLive(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	startServer(t, addr, "--data", t.TempDir())
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	o.onboard("acme") // older events the live watch must not print
	var seq uint64
	events := watchDuring(t, o.d.env, 1, func() {
		seq = sequenceOf(t, o.json(0, "revoke", "credential", "jti-live", "--reason", "leaked in a log"))
	})
	ev := events[0]
	if uint64(ev["sequence"].(float64)) != seq || ev["kind"] != "credential_revoked" || ev["target"] != "credential/jti-live" ||
		ev["reason"] != "leaked in a log" {
		t.Fatalf("live watch printed %v, want the revocation at %d", ev, seq)
	}
}

// TestSigningKeyRevocation revokes the issuer's active signing key: every token it signed is
// denied, and issuance carries on at once with a new key.
func TestSigningKeyRevocation(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// The CLI's variables must not rewire a server: were TREATY_PDP used as the issuer's peer,
	// no token could be issued below.
	startServerEnv(t, []string{"TREATY_PDP=127.0.0.1:1", "TREATY_REVOKER=127.0.0.1:1"}, addr, "--data", t.TempDir())
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	key := o.onboard("acme")
	old := o.token("acme", key)
	oldKid := kidOf(t, old)

	seq := sequenceOf(t, o.json(0, "revoke", "key", "--reason", "issuer host compromised", "--", oldKid)) // a kid may begin with '-'
	o.wantReason(o.check(old, "orders.read", "orders-api", false, seq), "key_revoked")

	fresh := o.token("acme", key, "--min-sequence", strconv.FormatUint(seq, 10))
	if kidOf(t, fresh) == oldKid {
		t.Fatal("the issuer still signs with the revoked key")
	}
	o.wantReason(o.check(fresh, "orders.read", "orders-api", true, 0), "granted")
	o.wantReason(o.check(old, "orders.read", "orders-api", false, 0), "key_revoked")
}

// kidOf returns the kid header of a JWT.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.SplitN(jwt, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &header); err != nil || header.Kid == "" {
		t.Fatalf("token header %s: %v", raw, err)
	}
	return header.Kid
}
