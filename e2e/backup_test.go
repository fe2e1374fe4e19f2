package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackupAndRestore takes a backup while revocations keep landing, changes more after it,
// restores it, and checks what the restore procedure promises: the restored server serves the
// backed-up state under a new epoch, tokens of the old epoch are denied, and a PDP that followed
// the old log sees the replacement and keeps the revocation the backup never held.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	addr, pdpAddr := freeAddr(t), freeAddr(t)
	data := t.TempDir()
	srv := startServer(t, addr, "--data", data)
	startServer(t, pdpAddr, "--data", t.TempDir(), "--services", "pdp", "--revoker", addr)
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr}}, dir: t.TempDir()}
	acmeKey := o.onboard("acme")
	globexKey := o.onboard("globex")
	old := o.token("acme", acmeKey)
	globexOld := o.token("globex", globexKey)

	// Revocations keep landing while the backup is taken.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := treaty(t, o.d.env, "", "revoke", "credential", "during-backup-"+strconv.Itoa(i), "--reason", "load")
			if r.code != 0 {
				t.Errorf("revoke during backup: %s", r)
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	out := filepath.Join(t.TempDir(), "treaty.backup")
	r := o.run(0, "backup", "--out", out)
	close(stop)
	wg.Wait()
	for _, name := range []string{"registry", "issuer", "pdp", "decisionlog", "revoker"} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("backup output %q does not list the %s store", r.stdout, name)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v (mode %v), want mode 0600", err, fi.Mode())
	}
	if again := o.run(1, "backup", "--out", out); !strings.Contains(again.stderr, "FAILED_PRECONDITION") {
		t.Fatalf("a second backup onto the same file: %s", again)
	}

	// After the backup: globex is revoked. The backup does not hold that.
	after := sequenceOf(t, o.json(0, "revoke", "partner", "globex", "--reason", "after the backup"))
	pdp := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + addr, "TREATY_PDP=" + pdpAddr}}, dir: o.dir}
	pdp.wantReason(pdp.check(globexOld, "orders.read", "orders-api", false, after), "partner_blocked")

	// Restore: the server stops, the backup replaces its stores (the old ones moved aside).
	srv.stop()
	if r := treaty(t, nil, "", "restore-backup", "--from", out, "--data", data); r.code != 1 || !strings.Contains(r.stderr, "--move-aside") {
		t.Fatalf("restore over live stores without --move-aside: %s", r)
	}
	restored := o.json(0, "restore-backup", "--from", out, "--data", data, "--move-aside")
	if restored["epoch"] == restored["old_epoch"] || restored["epoch"] == "" {
		t.Fatalf("restore kept the epoch: %v", restored)
	}
	if aside, _ := filepath.Glob(filepath.Join(data, "pre-restore-*", "revoker.db")); len(aside) != 1 {
		t.Fatalf("the replaced stores were not moved aside: %v", aside)
	}
	srv.start()

	// The restored server: everything backed up is there; old-epoch tokens are denied; new
	// tokens work; globex is not blocked in the restored log.
	o.run(0, "partner", "get", "acme")
	o.wantReason(o.check(old, "orders.read", "orders-api", false, 0), "epoch_mismatch")
	fresh := o.token("acme", acmeKey)
	o.wantReason(o.check(fresh, "orders.read", "orders-api", true, 0), "granted")
	globexNew := o.token("globex", globexKey)
	o.wantReason(o.check(globexNew, "orders.read", "orders-api", true, 0), "granted")

	// The follower saw the log replaced: it keeps the block on globex that the restored log
	// forgot, and accepts acme's new token.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := treaty(t, pdp.d.env, "", "check", "--token", globexNew, "--action", "orders.read", "--resource", "orders-api", "-o", "json")
		if strings.Contains(r.stdout, "partner_blocked") {
			break
		}
		if !strings.Contains(r.stdout, "stale") && !strings.Contains(r.stdout, "syncing") && !strings.Contains(r.stdout, "epoch_mismatch") || time.Now().After(deadline) {
			t.Fatalf("the follower after the restore: %s; want partner_blocked kept", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reasons := pdp.check(fresh, "orders.read", "orders-api", true, 0)
	if !slices.Contains(reasons, "granted") {
		t.Fatalf("the follower denies acme's new token: %v", reasons)
	}
}
