package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/auditsvc"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// auditServer serves a real registry and its audit trail on loopback, over a real bbolt file, and
// returns the registry, its store (for consistent copies) and the address.
func auditServer(t *testing.T) (*registry.Registry, *store.Bolt, *auditsvc.Service, string) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBoltAt(t, filepath.Join(t.TempDir(), "registry.db"), registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc := auditsvc.New(auditsvc.Config{Registry: reg, FollowInterval: 20 * time.Millisecond, Logger: quiet})
	t.Cleanup(svc.Close)
	conn := grpctest.Serve(t, func(r grpc.ServiceRegistrar) {
		registrysvc.New(registrysvc.Config{Registry: reg, Logger: quiet}).Register(r)
		svc.Register(r)
	})
	return reg, st, svc, conn.Target()
}

// createPartners creates partners p<from>..p<to-1> through the registry, one audit record each.
func createPartners(t *testing.T, reg *registry.Registry, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		p := registry.Partner{ID: fmt.Sprintf("p%d", i), DisplayName: "Partner", OwnerTeam: "security", ContractEnd: time.Now().Add(24 * time.Hour)}
		if _, _, err := reg.CreatePartner(context.Background(), p, "alice"); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDB writes a consistent copy of the store to a new file, as `treaty backup` does.
func copyDB(t *testing.T, st *store.Bolt) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry-copy.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Backup(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// editAudit changes a database file's audit bucket with bbolt directly.
func editAudit(t *testing.T, path string, edit func(b *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return edit(tx.Bucket([]byte(registry.AuditBucket))) }); err != nil {
		t.Fatal(err)
	}
}

func TestAuditListAndExport(t *testing.T) {
	reg, _, _, addr := auditServer(t)
	createPartners(t, reg, 1, 5)
	cli := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--registry", addr}, args...)...)
	}

	code, out, errOut := cli("audit", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[0], "SEQ ") || !strings.Contains(lines[0], "ACTOR") {
		t.Fatalf("audit list: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if f := strings.Fields(lines[2]); f[0] != "2" || f[2] != "alice" || f[3] != "partner.create" || f[4] != "partner/p2" || f[6] != "created" {
		t.Errorf("row 2 = %q", lines[2])
	}
	// Columns are aligned: every row's ACTION starts where the header's does.
	col := strings.Index(lines[0], "ACTION")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "partner.create") {
			t.Errorf("misaligned row %q", l)
		}
	}
	if code, out, _ := cli("audit", "list", "--target", "partner/p3", "-o", "json"); code != 0 || strings.Count(out, "\n") != 1 ||
		!strings.Contains(out, `"sequence":3`) {
		t.Errorf("audit list --target -o json: exit %d:\n%s", code, out)
	}
	if code, _, errOut := cli("audit", "list", "--target", "p3"); code != exitError || !strings.Contains(errOut, "INVALID_ARGUMENT") {
		t.Errorf("audit list --target p3: exit %d, %q", code, errOut)
	}
	if code, _, _ := cli("audit", "list", "--limit", "-1"); code != exitUsage {
		t.Errorf("audit list --limit -1: exit %d", code)
	}

	// The export's lines are the stored records: the chain verifies over them, from the genesis.
	code, out, errOut = cli("audit", "export")
	if code != 0 {
		t.Fatalf("audit export: exit %d, %s", code, errOut)
	}
	chain := registry.NewAuditChain(registry.AuditAnchor{})
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := uint64(1); sc.Scan(); n++ {
		if !chain.Add(store.Uint64Key(n), sc.Bytes()) {
			t.Fatalf("export line %d does not verify: %v", n, chain.Result().Broken)
		}
	}
	if v := chain.Result(); !v.Intact() || v.Records != 4 {
		t.Errorf("export verifies as %+v", v)
	}
	if code, out, _ := cli("audit", "export", "--after", "3"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("audit export --after 3: exit %d:\n%s", code, out)
	}
	var rec registry.AuditRecord
	if _, out, _ := cli("audit", "export", "--after", "3"); json.Unmarshal([]byte(out), &rec) != nil || rec.Sequence != 4 || rec.Prev == "" {
		t.Errorf("exported record = %+v", rec)
	}
}

func TestAuditExportFollow(t *testing.T) {
	reg, _, svc, addr := auditServer(t)
	createPartners(t, reg, 1, 3)
	var out, errOut logtest.Buffer
	exited := make(chan int)
	go func() {
		exited <- run([]string{"--registry", addr, "audit", "export", "--after", "1", "--follow"}, strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the backlog", func() bool { return strings.Contains(out.String(), `"sequence":2`) })
	createPartners(t, reg, 3, 4)
	waitFor(t, "the new record", func() bool { return strings.Contains(out.String(), `"sequence":3`) })
	if strings.Count(out.String(), "\n") != 2 {
		t.Errorf("follow output:\n%s", out.String())
	}
	svc.Close() // the server stopping ends the export, saying where to resume
	select {
	case code := <-exited:
		if code != exitError || !strings.Contains(errOut.String(), "--after 3") || !strings.Contains(errOut.String(), "UNAVAILABLE") {
			t.Fatalf("exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("export did not end when the server closed it")
	}
}

// TestAuditVerify is the acceptance test through the CLI: a real server on loopback over a real
// bbolt file; the server verifies its own trail; copies of the file verify offline, and a record
// changed or deleted in a copy with bbolt is reported by sequence with exit status 4.
func TestAuditVerify(t *testing.T) {
	reg, st, _, addr := auditServer(t)
	createPartners(t, reg, 1, 6)
	recs, err := reg.ListAudit(context.Background(), 0, 0)
	if err != nil || len(recs) != 5 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	head := recs[4].Hash
	cli := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--registry", addr}, args...)...)
	}

	code, out, errOut := cli("audit", "verify")
	if code != 0 || !strings.Contains(out, "intact") || !strings.Contains(out, head) {
		t.Fatalf("audit verify: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	if code, out, _ := cli("audit", "verify", "--anchor", "3:"+head); code != exitAuditBroken || !strings.Contains(out, "anchor_mismatch") {
		t.Errorf("audit verify with a wrong anchor: exit %d:\n%s", code, out)
	}
	for _, bad := range []string{"3", "x:" + head, "0:" + head, "3:abc"} {
		if code, _, _ := cli("audit", "verify", "--anchor", bad); code != exitUsage {
			t.Errorf("--anchor %q: exit %d, want %d", bad, code, exitUsage)
		}
	}

	for _, tc := range []struct {
		name    string
		edit    func(b *bolt.Bucket) error
		anchor  string
		code    int
		problem string // in the output
	}{
		{name: "intact copy", code: 0, problem: "intact"},
		{name: "intact copy with the head as anchor", anchor: "5:" + head, code: 0, problem: "intact"},
		{name: "actor changed", edit: func(b *bolt.Bucket) error {
			raw := strings.Replace(string(b.Get(store.Uint64Key(3))), `"actor":"alice"`, `"actor":"mallory"`, 1)
			return b.Put(store.Uint64Key(3), []byte(raw))
		}, code: exitAuditBroken, problem: "hash_mismatch"},
		{name: "record deleted", edit: func(b *bolt.Bucket) error { return b.Delete(store.Uint64Key(2)) },
			code: exitAuditBroken, problem: "gap"},
		{name: "last record deleted, with the head as anchor", anchor: "5:" + head,
			edit: func(b *bolt.Bucket) error { return b.Delete(store.Uint64Key(5)) }, code: exitAuditBroken, problem: "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyDB(t, st)
			if tc.edit != nil {
				editAudit(t, cp, tc.edit)
			}
			before, err := os.ReadFile(cp)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"audit", "verify", "--db", cp}
			if tc.anchor != "" {
				args = append(args, "--anchor", tc.anchor)
			}
			code, out, errOut := runCLI(args...)
			if code != tc.code || !strings.Contains(out, tc.problem) {
				t.Fatalf("exit %d (want %d), stderr %q, stdout:\n%s", code, tc.code, errOut, out)
			}
			if after, _ := os.ReadFile(cp); string(after) != string(before) {
				t.Error("verifying the copy changed it")
			}
			code, out, _ = runCLI(append(args, "-o", "json")...)
			var v registry.AuditVerification
			if err := json.Unmarshal([]byte(out), &v); err != nil || code != tc.code {
				t.Fatalf("-o json: exit %d, %v:\n%s", code, err, out)
			}
			switch tc.name {
			case "actor changed":
				if v.Broken.Sequence != 3 || v.Records != 2 {
					t.Errorf("broken at %d after %d records, want record 3 after 2", v.Broken.Sequence, v.Records)
				}
				if !strings.Contains(errOut, "broken at record 3") {
					t.Errorf("stderr %q does not name record 3", errOut)
				}
			case "record deleted":
				if v.Broken.Sequence != 3 || !strings.Contains(v.Broken.Detail, "record 2 is missing") {
					t.Errorf("broken = %+v, want a gap at 3 naming record 2", v.Broken)
				}
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "missing.db")
	if code, _, errOut := runCLI("audit", "verify", "--db", missing); code != exitUsage || !strings.Contains(errOut, "--db") {
		t.Errorf("--db of a missing file: exit %d, %q", code, errOut)
	}
	notRegistry := filepath.Join(t.TempDir(), "other.db")
	other, err := store.OpenBolt(notRegistry, store.Schema{Name: "other", Version: 1, Buckets: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if code, _, errOut := runCLI("audit", "verify", "--db", notRegistry); code != exitError || !strings.Contains(errOut, "not a registry database") {
		t.Errorf("--db of another service's file: exit %d, %q", code, errOut)
	}
}

func TestAuditVerifyLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	st, err := store.OpenBolt(path, registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, errOut := runCLI("audit", "verify", "--db", path)
	if code != exitError || !strings.Contains(errOut, "verify a copy") {
		t.Errorf("--db of a file a server holds: exit %d, %q", code, errOut)
	}
}
