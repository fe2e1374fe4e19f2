package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEnvironmentAndLifecycle runs a production deployment (--environment production): a test
// integration gets no credential there, a production integration's credential is denied the moment
// its integration is moved to test, and suspending and reactivating an integration turns its
// credentials off and, for new ones, on again.
func TestEnvironmentAndLifecycle(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	dir := t.TempDir()
	startServer(t, addr, "--data", filepath.Join(dir, "data"), "--environment", "production")
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: dir}
	key := o.onboard("acme")
	tok := o.token("acme", key)
	o.check(tok, "orders.read", "orders-api", true, 0)

	// A test integration under the same partner: no credential on production.
	testKey := filepath.Join(dir, "test.key")
	o.run(0, "keygen", "--out", testKey)
	o.run(0, "integration", "create", "--partner", "acme", "--id", "acme-sandbox", "--environment", "test",
		"--scopes", "orders.read", "--audiences", "orders-api", "--max-ttl", "10m", "--activate", "--approved-by", "vendor-risk")
	o.run(0, "workload", "create", "--integration", "acme-sandbox", "--id", "acme-sandbox-bot", "--public-key", testKey+".pub")
	r := o.run(1, "token", "--workload", "acme-sandbox-bot", "--key", testKey, "--scopes", "orders.read", "--audience", "orders-api")
	if !strings.Contains(r.stderr, "PERMISSION_DENIED") {
		t.Errorf("a test integration's token on production: %s", r)
	}

	// Suspended: denied; reactivated: old credentials stay dead, new ones work.
	seq := sequenceOf(t, o.json(0, "integration", "suspend", "acme-api", "--reason", "review"))
	o.wantReason(o.check(tok, "orders.read", "orders-api", false, seq), "integration_blocked")
	seq = sequenceOf(t, o.json(0, "integration", "reactivate", "acme-api", "--reason", "reviewed"))
	o.wantReason(o.check(tok, "orders.read", "orders-api", false, seq), "integration_revoked")
	fresh := o.token("acme", key, "--min-sequence", strconv.FormatUint(seq, 10))
	o.check(fresh, "orders.read", "orders-api", true, seq)

	// Moved to test: the production PDP denies its credentials at once.
	seq = sequenceOf(t, o.json(0, "integration", "update", "acme-api", "--environment", "test"))
	o.wantReason(o.check(fresh, "orders.read", "orders-api", false, seq), "environment_mismatch")
}
